"""Multi-loss rebalancing (Lee & Kim, ECCV 2020) as adapted by seed 004.

Adaptations from seed 004: all weights start equal (1 / K) with no value-scale
initialisation; weights change only from each loss's rate of decrease; 'hard' losses (those
decreasing more slowly than the weighted total) are emphasised first, 'easy' ones later
(``mode='hard_to_easy'``); intermediate heads stay wrapped inside one loss term with fixed
head weights (pass ``multi_head_loss`` values, never per-head terms).

Update rule, once per period of ``period`` calls to ``update`` with per-period mean losses
L_k(t) and weighted total T(t) = sum_k w_k L_k(t):

    ratio_k = (T(t) / T(t-1)) * (L_k(t-1) / L_k(t))      (> 1: k decreased faster, "easy")
    w_k    *= clip(1 + lambda * (ratio_k - 1), 1/2, 2)

lambda < 0 favours hard losses, lambda > 0 easy ones; 'hard_to_easy' ramps lambda linearly
from -strength to +strength over ``ramp`` rebalancing steps.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping, Sequence

import torch

from .masks import Tensor

_MODES = ('hard_to_easy', 'easy_to_hard', 'hard', 'easy')


class LossRebalancer:
    """Periodically reweights named losses; ``combine(losses)`` gives the weighted total.

    ``period``: calls to ``update`` per rebalancing (seed 004: five per epoch, i.e.
    iterations_per_epoch // 5). ``weights`` are not renormalised (seed 004 reports 0.33 ->
    0.1 / 0.285 / 0.9).
    """

    def __init__(self, names: Sequence[str], period: int, mode: str = 'hard_to_easy',
                 strength: float = 3.0, ramp: int = 20, clip: tuple[float, float] = (0.5, 2.0)):
        if mode not in _MODES:
            raise ValueError(f'mode must be one of {_MODES}, not {mode!r}')
        if period < 1 or ramp < 1 or not names:
            raise ValueError('need at least one loss name, period >= 1 and ramp >= 1')
        self.names, self.period, self.mode = tuple(names), int(period), mode
        self.strength, self.ramp, self.clip = float(strength), int(ramp), (float(clip[0]), float(clip[1]))
        self._weights = {n: 1.0 / len(self.names) for n in self.names}
        self._sums = {n: 0.0 for n in self.names}
        self._count = 0
        self._prev: dict[str, float] | None = None
        self._prev_total = 0.0
        self._steps = 0

    @property
    def weights(self) -> dict[str, float]:
        """Current weight of each loss."""
        return dict(self._weights)

    @property
    def emphasis(self) -> float:
        """lambda for the next rebalancing step (< 0: hard losses, > 0: easy losses)."""
        progress = min(self._steps / self.ramp, 1.0)
        lam = {'hard': -1.0, 'easy': 1.0, 'hard_to_easy': 2 * progress - 1, 'easy_to_hard': 1 - 2 * progress}
        return self.strength * lam[self.mode]

    def _total(self, means: Mapping[str, float]) -> float:
        return sum(self._weights[n] * means[n] for n in self.names)

    def update(self, losses: Mapping[str, float | Tensor]) -> bool:
        """Record one iteration's loss values; True when this call rebalanced the weights."""
        if set(losses) != set(self.names):
            raise KeyError(f'expected losses {sorted(self.names)}, got {sorted(losses)}')
        for n in self.names:
            v = losses[n]
            self._sums[n] += float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
        self._count += 1
        if self._count < self.period:
            return False
        means = {n: max(self._sums[n] / self._count, 1e-12) for n in self.names}
        self._sums, self._count = {n: 0.0 for n in self.names}, 0
        changed = self._prev is not None
        if changed:
            lam, lo, hi = self.emphasis, *self.clip
            growth = self._total(means) / max(self._prev_total, 1e-12)
            for n in self.names:
                ratio = growth * self._prev[n] / means[n]
                self._weights[n] *= min(max(1 + lam * (ratio - 1), lo), hi)
            self._steps += 1
        self._prev, self._prev_total = means, self._total(means)
        return changed

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """sum_k w_k * losses[k] (differentiable in the losses, weights are constants)."""
        return sum(self._weights[n] * losses[n] for n in self.names)

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python state for checkpoints (torch.save or JSON)."""
        return {'names': list(self.names), 'weights': dict(self._weights), 'sums': dict(self._sums),
                'count': self._count, 'prev': None if self._prev is None else dict(self._prev),
                'prev_total': self._prev_total, 'steps': self._steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()`` output; the loss names must match."""
        if list(state['names']) != list(self.names):
            raise ValueError(f'checkpoint losses {state["names"]} differ from {list(self.names)}')
        self._weights, self._sums = dict(state['weights']), dict(state['sums'])
        self._count, self._steps = int(state['count']), int(state['steps'])
        self._prev_total = float(state['prev_total'])
        self._prev = None if state['prev'] is None else dict(state['prev'])
