"""Loss registry: ``@register_loss`` on loss functions, ``build_loss(cfg)`` for YAML recipes.

Every registered function has the signature ``fn(pred, target, valid=None, *, <params>,
<inputs>)`` and returns a scalar tensor. ``needs`` names extra keyword inputs that come from
the batch (e.g. ``image``), everything else keyword-only is a recipe parameter.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Mapping, Sequence

from .heads import multi_head_loss
from .masks import Tensor


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., Tensor]
    needs: tuple[str, ...]
    positive_target: bool


_LOSSES: dict[str, _Entry] = {}


def register_loss(name: str, *, needs: Sequence[str] = (), positive_target: bool = True
                  ) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Register ``fn`` under ``name``. ``positive_target``: target <= 0 means missing (depth GT)."""
    def wrap(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if name in _LOSSES:
            raise ValueError(f'loss {name!r} is already registered')
        _LOSSES[name] = _Entry(fn, tuple(needs), positive_target)
        return fn
    return wrap


def list_losses() -> list[str]:
    """Sorted registered loss names."""
    return sorted(_LOSSES)


@dataclass
class Loss:
    """A configured loss: ``loss(pred, target, valid=None, **inputs)`` -> scalar tensor.

    ``needs``: names of batch inputs to pass as keywords (e.g. ``('image',)``). With
    ``head_weights``, ``pred`` is a sequence of heads (final first), see ``multi_head_loss``.
    """
    name: str
    fn: Callable[..., Tensor]
    params: dict[str, Any]
    needs: tuple[str, ...] = ()
    positive_target: bool = True
    head_weights: tuple[float, ...] | None = field(default=None)

    def __call__(self, pred: Tensor | Sequence[Tensor], target: Tensor, valid: Tensor | None = None,
                 **inputs: Tensor) -> Tensor:
        if self.head_weights is None:
            return self.fn(pred, target, valid, **self.params, **inputs)
        return multi_head_loss(lambda p, t, v, **kw: self.fn(p, t, v, **self.params, **kw), pred, target,
                               valid, self.head_weights, self.positive_target, **inputs)


def build_loss(cfg: Mapping[str, Any] | str) -> Loss:
    """Build a loss from a recipe entry, e.g. ``{'name': 'densedepth', 'w_l1': 0.1}`` or ``'l1'``.

    The optional key ``head_weights`` (e.g. ``[0.5, 0.25, 0.25]``) applies the loss to every
    prediction head. Unknown names or parameters raise, so a typo in a recipe fails early.
    """
    cfg = {'name': cfg} if isinstance(cfg, str) else dict(cfg)
    name = cfg.pop('name')
    head_weights = cfg.pop('head_weights', None)
    if name not in _LOSSES:
        raise KeyError(f'unknown loss {name!r}; known: {", ".join(list_losses())}')
    entry = _LOSSES[name]
    allowed = [p.name for p in inspect.signature(entry.fn).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in entry.needs]
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise TypeError(f'loss {name!r} has no parameter(s) {unknown}; allowed: {allowed}')
    return Loss(name, entry.fn, cfg, entry.needs, entry.positive_target,
                None if head_weights is None else tuple(float(w) for w in head_weights))
