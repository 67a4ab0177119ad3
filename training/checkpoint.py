"""Atomic training checkpoints (plain data only: loadable with ``torch.load(weights_only=True)``).

A checkpoint is the export format of :mod:`depth_ros.nets.export` plus the training state::

    {'arch', 'options', 'model': state_dict, 'card': {'trained', 'training', 'metrics', 'f_canonical'},
     'config': TrainConfig.to_dict(), 'step', 'optimizer', 'scaler', 'schedule', 'rebalancer',
     'ranks': [{'rng': ..., 'stream': ...} per process], 'best': {...}, 'elapsed_s'}

Files are written to ``<name>.tmp`` and renamed with ``os.replace``, so a run killed while
saving keeps the previous complete file. Modules are never pickled.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

LAST, BEST = 'last.pt', 'best.pt'


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP / torch.compile wrappers (its state_dict has the registry's keys)."""
    while True:
        if hasattr(model, 'module') and isinstance(model.module, nn.Module):  # DistributedDataParallel
            model = model.module
        elif hasattr(model, '_orig_mod'):  # torch.compile
            model = model._orig_mod
        else:
            return model


def save_atomic(state: dict[str, Any], path: str | Path) -> Path:
    """torch.save ``state`` to ``path`` via a temporary file, fsync and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'wb') as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load(path: str | Path) -> dict[str, Any]:
    """A checkpoint dict, tensors on the CPU (weights_only: no code runs while loading)."""
    ckpt = torch.load(Path(path), map_location='cpu', weights_only=True)
    if not isinstance(ckpt, dict) or 'model' not in ckpt or 'arch' not in ckpt:
        raise ValueError(f"{path} is not a checkpoint (a dict with 'arch' and 'model')")
    return ckpt


def rng_state() -> dict[str, Any]:
    """States of the python, numpy (global) and torch (CPU and every CUDA device) RNGs, as
    tensors, ints and lists only."""
    np_state = np.random.get_state(legacy=False)
    state = {
        'python': random.getstate(),
        'numpy': {'key': torch.from_numpy(np_state['state']['key'].astype(np.int64)),
                  'pos': int(np_state['state']['pos']), 'has_gauss': int(np_state['has_gauss']),
                  'gauss': float(np_state['gauss'])},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` output."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    np_state = state['numpy']
    np.random.set_state({'bit_generator': 'MT19937',
                         'state': {'key': np_state['key'].numpy().astype(np.uint32), 'pos': np_state['pos']},
                         'has_gauss': np_state['has_gauss'], 'gauss': np_state['gauss']})
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        cuda = state['cuda']
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def card_info(trained: bool, training: dict[str, Any], metrics: dict[str, Any],
              f_canonical: float | None) -> dict[str, Any]:
    """The 'card' entry: the model-card fields export_model accepts from a checkpoint."""
    return {'trained': trained, 'training': training, 'metrics': metrics, 'f_canonical': f_canonical}
