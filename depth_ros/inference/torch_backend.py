"""Optional torch backend: runs a training checkpoint (``.pt``) directly, without exporting it.

Imported only when an estimator is given a checkpoint (backend 'auto' or 'torch'); needs torch
and ``depth_ros.nets``. Pre- and post-processing are the estimators' (same as ONNX Runtime).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..model_card import INPUT_NAMES, Graph, ModelCard, ModelCardError, network_card
from .runners import ALIASES, requested_providers

log = logging.getLogger('depth_ros')

GPU_PROVIDERS = (ALIASES['cuda'], ALIASES['tensorrt'])


class TorchRunner:
    """Runs a torch module in eval mode on numpy inputs; ``stages`` (stereo) is set before each run
    so that runners for different stage counts can share one module."""

    def __init__(self, model: torch.nn.Module, device: torch.device, input_names: Sequence[str],
                 stages: int | None = None) -> None:
        self.model, self.device, self.input_names, self.stages = model, device, tuple(input_names), stages
        self.providers = [f'torch:{device.type}']

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Named (1, 3, H, W) float32 arrays -> the model's output as a float32 numpy array."""
        with torch.inference_mode():
            if self.stages is not None:
                self.model.stages = self.stages
            out = self.model(*(torch.from_numpy(inputs[n]).to(self.device) for n in self.input_names))
        return out.float().cpu().numpy()


def load_checkpoint_model(path: Path, providers: str | Sequence[str],
                          threads: int) -> tuple[ModelCard, Callable[[int], TorchRunner], list[str]]:
    """Build the model of a checkpoint and describe it with an in-memory card. Returns (the card,
    ``make_runner(stages)``, the providers used).

    Runs on CUDA when 'cuda' or 'tensorrt' is requested and torch sees a GPU, else on the CPU
    (with a warning if a GPU was asked for). ``threads`` > 0 sets torch's (process-wide) CPU
    thread count. A checkpoint whose card does not say ``trained`` is taken as trained.
    """
    from ..nets import model_kind
    from ..nets.checkpoint import checkpoint_input_size, load_checkpoint

    if not path.is_file():
        raise ModelCardError(f'checkpoint {path} does not exist')
    try:
        module, ckpt = load_checkpoint(path)
    except Exception as e:  # torch.load / state-dict errors of many kinds
        raise ModelCardError(f'cannot load checkpoint {path}: {e}') from e
    want_gpu = any(p in GPU_PROVIDERS for p in requested_providers(providers))
    device = torch.device('cuda' if want_gpu and torch.cuda.is_available() else 'cpu')
    if want_gpu and device.type == 'cpu':
        log.warning('torch sees no CUDA device; running %s on the CPU', path)
    if threads:
        torch.set_num_threads(threads)
    module.to(device)

    kind = model_kind(ckpt['arch'])
    info = ckpt.get('card') or {}
    stereo = kind == 'stereo'
    graphs = [Graph(k, path.name) for k in (range(1, module.max_stages + 1) if stereo else [1])]
    card = network_card(module, name=path.stem, arch=ckpt['arch'], kind=kind, graphs=graphs,
                        options=ckpt.get('options', {}), dynamic=True, info=info,
                        size=checkpoint_input_size(info) or getattr(module, 'input_size', None),
                        trained=bool(info.get('trained', True)), directory=path.parent)
    names = INPUT_NAMES[kind]
    return card, lambda k: TorchRunner(module, device, names, k if stereo else None), [f'torch:{device.type}']
