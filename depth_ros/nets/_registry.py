"""A tiny model registry: ``@register_model`` builders, ``create_model(name, **options)``."""
from __future__ import annotations

import fnmatch
from collections.abc import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_KINDS: dict[str, str] = {}


def register_model(name: str, kind: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``fn(**options) -> nn.Module`` under ``name``; ``kind`` is 'mono' or 'stereo'."""
    if kind not in ('mono', 'stereo'):
        raise ValueError(f"kind must be 'mono' or 'stereo', not {kind!r}")

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f'model {name!r} is already registered')
        _MODELS[name] = fn
        _KINDS[name] = kind
        return fn

    return wrap


def create_model(name: str, **options) -> nn.Module:
    """Build a registered model with its default config updated by ``options``."""
    try:
        builder = _MODELS[name]
    except KeyError:
        raise KeyError(f'unknown model {name!r}; known: {", ".join(sorted(_MODELS))}') from None
    return builder(**options)


def list_models(pattern: str = '*', kind: str | None = None) -> list[str]:
    """Sorted names of registered models matching a glob ``pattern`` (and ``kind`` if given)."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern) and kind in (None, _KINDS[n]))


def model_kind(name: str) -> str:
    """'mono' or 'stereo' for a registered model name."""
    if name not in _KINDS:
        raise KeyError(f'unknown model {name!r}; known: {", ".join(sorted(_KINDS))}')
    return _KINDS[name]
