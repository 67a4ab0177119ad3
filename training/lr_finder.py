"""Learning-rate range test (Smith 2017, used by seed 002 to pick FastDepth's 0.08).

The learning rate grows exponentially from ``start_lr`` to ``end_lr`` over ``steps`` batches
while the (exponentially smoothed) loss is recorded; the test stops early once the smoothed
loss exceeds ``diverge`` x its minimum. The suggestion is the learning rate where the smoothed
loss falls fastest (steepest negative slope against log lr) before its minimum. The model,
optimiser and RNG states are restored afterwards, so a training run can follow.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import plots
from .rng import rng_state, set_rng_state
from .trainer import Trainer


@dataclass
class LRFinderResult:
    """Learning rates tried, raw and smoothed losses, the suggestion and the plot's path."""
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggested_lr: float = math.nan
    plot: Path | None = None


def suggest_lr(lrs: list[float], smoothed: list[float], skip: int = 3) -> float:
    """LR of the steepest descent of ``smoothed`` loss vs log10(lr), before its minimum
    (ignoring the first ``skip`` points, where the smoothing is still warming up)."""
    if len(lrs) < skip + 3:
        return lrs[int(np.argmin(smoothed))] / 10 if lrs else math.nan
    loss = np.asarray(smoothed)
    end = max(int(np.argmin(loss)), skip + 2)
    slope = np.gradient(loss[:end + 1], np.log10(np.asarray(lrs[:end + 1])))
    return float(lrs[skip + int(np.argmin(slope[skip:]))])


def find_lr(trainer: Trainer, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100,
            smoothing: float = 0.9, diverge: float = 4.0, plot_path: Path | None = None) -> LRFinderResult:
    """Run the range test with ``trainer``'s model, data and optimiser; restores them after."""
    model_state = copy.deepcopy(trainer.model.state_dict())
    optim_state = copy.deepcopy(trainer.optimizer.state_dict())
    scaler_state = copy.deepcopy(trainer.scaler.state_dict())
    rng = rng_state()
    stream_state = trainer.stream.state_dict()
    result = LRFinderResult()
    avg, best = 0.0, math.inf
    trainer.model.train()
    try:
        for i, lr in enumerate(np.geomspace(start_lr, end_lr, steps).tolist()):
            loss = float(trainer.train_step(lr)['loss'])
            if not math.isfinite(loss):
                break
            avg = smoothing * avg + (1 - smoothing) * loss
            smooth = avg / (1 - smoothing ** (i + 1))  # bias-corrected
            result.lrs.append(lr)
            result.losses.append(loss)
            result.smoothed.append(smooth)
            best = min(best, smooth)
            if smooth > diverge * best:
                break
    finally:
        trainer.model.load_state_dict(model_state)
        trainer.optimizer.load_state_dict(optim_state)
        trainer.scaler.load_state_dict(scaler_state)
        set_rng_state(rng)
        trainer.stream.load_state_dict(stream_state)
    result.suggested_lr = suggest_lr(result.lrs, result.smoothed)
    if plot_path is not None and result.lrs:
        result.plot = plots.line_plot(plot_path, {'loss': (result.lrs, result.losses),
                                                  'smoothed': (result.lrs, result.smoothed)},
                                      title=f'LR range test: suggested lr {result.suggested_lr:.3g}',
                                      xlabel='learning rate', log_x=True,
                                      marker=(result.suggested_lr, float(np.interp(
                                          math.log10(result.suggested_lr), np.log10(result.lrs), result.smoothed))))
    return result
