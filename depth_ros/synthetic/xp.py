"""A tiny array-namespace shim so one piece of code runs on numpy arrays and torch tensors.

Most element-wise operations share their name in numpy and torch (``xp.where``, ``xp.minimum``,
``xp.floor``, ``xp.sin``, ``xp.sqrt``, ``xp.flip`` ...); the few that differ live here. This
module never imports torch: a tensor's namespace is the already imported ``torch`` module.
"""
from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor


def namespace(x: Array) -> ModuleType:
    """``numpy`` for ndarrays, ``torch`` for torch tensors."""
    return sys.modules['torch'] if type(x).__module__.startswith('torch') else np


def is_numpy(x: Array) -> bool:
    """True for numpy arrays (and numpy scalars)."""
    return namespace(x) is np


def astype(x: Array, dtype: str) -> Array:
    """Cast to a dtype given by name ('float32', 'int64', 'bool')."""
    xp = namespace(x)
    if xp is np:
        return x.astype(getattr(np, dtype), copy=False)
    return x.to(getattr(xp, dtype))


def asarray(value: Any, like: Array, dtype: str = 'float32') -> Array:
    """``value`` (python or numpy data) as an array of ``like``'s kind, on its device."""
    xp = namespace(like)
    if xp is np:
        return np.asarray(value, dtype=getattr(np, dtype))
    host = xp.as_tensor(np.asarray(value), dtype=getattr(xp, dtype))
    if like.device.type == 'cuda':   # pinned + asynchronous: no wait for queued device work
        return host.pin_memory().to(like.device, non_blocking=True)
    return host.to(like.device)


def arange(n: int, like: Array, dtype: str = 'float32') -> Array:
    """``[0, 1, ..., n-1]`` on ``like``'s backend and device."""
    xp = namespace(like)
    if xp is np:
        return np.arange(n, dtype=getattr(np, dtype))
    return xp.arange(n, dtype=getattr(xp, dtype), device=like.device)


def full(shape: tuple[int, ...], value: float, like: Array, dtype: str = 'float32') -> Array:
    """A new array filled with ``value``, on ``like``'s backend and device."""
    xp = namespace(like)
    if xp is np:
        return np.full(shape, value, dtype=getattr(np, dtype))
    return xp.full(shape, value, dtype=getattr(xp, dtype), device=like.device)


def take_columns(table: Array, index: Array) -> Array:
    """Rows of a small 2-D table (N, F) picked by an integer array (...), returned column-major:
    (F, ...) with each column contiguous (element-wise maths on strided views is much slower)."""
    columns = table.T
    flat = index.reshape(-1)
    if is_numpy(table):
        picked = np.take(np.ascontiguousarray(columns), flat, axis=1)
    else:
        picked = columns.contiguous().index_select(1, flat)
    return picked.reshape(table.shape[-1], *index.shape)


def take_along_last(x: Array, index: Array) -> Array:
    """Gather ``x`` along its last axis with an integer index array of the same rank."""
    if is_numpy(x):
        return np.take_along_axis(x, index, axis=-1)
    return namespace(x).take_along_dim(x, index, dim=-1)


def mean_keepdims(x: Array, axes: tuple[int, ...]) -> Array:
    """Mean over ``axes`` keeping them as size-1 axes."""
    if is_numpy(x):
        return x.mean(axis=axes, keepdims=True)
    return x.mean(dim=axes, keepdim=True)


def stack(arrays: list[Array], axis: int) -> Array:
    """Stack along a new axis (``np.stack`` / ``torch.stack``)."""
    return namespace(arrays[0]).stack(arrays, axis)
