"""Checkpoints: ``torch.save``d dicts of plain data (loadable with ``weights_only=True``), written
by the trainer and :func:`save_checkpoint`, read by depth-ros-export, the torch inference
backend, evaluation and knowledge distillation::

    {'arch': str, 'options': dict, 'model': state_dict,
     'card': {'trained', 'training', 'metrics', 'f_canonical'}, ...}

The trainer adds its state ('config', 'step', 'optimizer', 'ranks', 'best', ...). Files are
written to ``<name>.tmp`` and renamed with ``os.replace``, so a process killed while saving
keeps the previous complete file. Modules are never pickled.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ._registry import create_model


def save_state(state: dict[str, Any], path: str | Path) -> Path:
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


def save_checkpoint(path: str | Path, model: nn.Module, arch: str, options: dict[str, Any] | None = None,
                    card: dict[str, Any] | None = None, **extra: Any) -> Path:
    """Write ``{'arch', 'options', 'model': state_dict, 'card', **extra}`` (see :func:`save_state`)."""
    return save_state({'arch': arch, 'options': dict(options or {}), 'model': model.state_dict(),
                       'card': dict(card or {}), **extra}, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint dict, tensors on the CPU (``weights_only``: no code runs while loading);
    ValueError unless it names an ``arch`` and holds a ``model`` state dict."""
    ckpt = torch.load(Path(path), map_location='cpu', weights_only=True)
    if not isinstance(ckpt, dict) or 'arch' not in ckpt or 'model' not in ckpt:
        raise ValueError(f"{path} is not a checkpoint (a dict with 'arch' and 'model', a state dict)")
    return ckpt


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``create_model(arch, **options)`` from a checkpoint and load its weights.
    Returns (model in eval mode, the checkpoint dict)."""
    ckpt = read_checkpoint(path)
    model = create_model(ckpt['arch'], **ckpt.get('options', {}))
    model.load_state_dict(ckpt['model'])
    return model.eval(), ckpt


def is_checkpoint(init: str | Path) -> bool:
    """True when ``init`` names a checkpoint file (an existing file that is not a .json card); else
    it is a model card or a shipped model's name."""
    path = Path(init)
    return path.suffix != '.json' and path.is_file()


def init_state(init: str | Path) -> tuple[str, dict[str, Any]]:
    """(arch, state dict) that starts a run: ``init`` is a checkpoint (.pt), a model card (.json)
    or a shipped model's name (its card's ``torch_weights`` archive)."""
    if is_checkpoint(init):
        ckpt = read_checkpoint(init)
        return ckpt['arch'], ckpt['model']
    from ..model_card import find_card, load_card
    from .from_onnx import load_card_weights

    card = load_card(find_card(init))
    return card.arch, load_card_weights(card).state_dict()


def card_info(trained: bool, training: dict[str, Any], metrics: dict[str, Any],
              f_canonical: float | None) -> dict[str, Any]:
    """A checkpoint's 'card' entry: the model-card fields export_model accepts."""
    return {'trained': trained, 'training': training, 'metrics': metrics, 'f_canonical': f_canonical}


def checkpoint_input_size(card: dict | None) -> list[int] | None:
    """(H, W) a checkpoint's network was trained at (the trainer records it in its card)."""
    return ((card or {}).get('training') or {}).get('input_size') or None


def derive_state(arch: str, options: dict[str, Any], state: dict[str, Any], card: dict | None,
                 source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Weights of ``create_model(arch, **options)`` taken from a checkpoint trained with other
    options: the tensors the new model has, which must all be in ``state`` with the same shapes
    (e.g. AnyNet without its SPN from an SPN checkpoint). The card's ``training`` says so."""
    wanted = create_model(arch, **options).state_dict()
    missing = [k for k, v in wanted.items() if k not in state or state[k].shape != v.shape]
    if missing:
        raise ValueError(f'{source}: options {options} need tensors the checkpoint lacks or shapes it '
                         f'does not match: {missing[:5]}{" ..." if len(missing) > 5 else ""}')
    dropped = sorted(set(state) - set(wanted))
    card = dict(card or {})
    training = dict(card.get('training') or {})
    training['derived'] = (f'weights of {source} with options {options}: '
                           f'{len(wanted)} tensors kept, {len(dropped)} dropped')
    card['training'] = training
    return {k: state[k] for k in wanted}, card
