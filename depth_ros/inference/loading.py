"""Resolve an estimator's ``model`` argument to a model card and a runner factory."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..model_card import INPUT_NAMES, ModelCard, ModelCardError, find_card, load_card
from .images import EstimatorError
from .runners import OrtRunner, Runner, resolve_providers

log = logging.getLogger('depth_ros')

BACKENDS = ('auto', 'onnxruntime', 'torch', 'opencv')
CHECKPOINT_SUFFIXES = ('.pt', '.pth', '.ckpt')


@dataclass
class LoadedModel:
    """A network model ready to run: its card, backend and ``make_runner(stages) -> Runner``."""
    card: ModelCard
    backend: str
    make_runner: Callable[[int], Runner]
    providers: list[str] = field(default_factory=list)

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(H, W) the graphs require, or None when they take any multiple of ``multiple_of``."""
        if self.card.input.get('dynamic', True):
            return None
        return _card_size(self.card)

    @property
    def multiple_of(self) -> int:
        return 1 if self.fixed_size else int(self.card.input.get('multiple_of', 1))

    @property
    def output_scale(self) -> float:
        return float(self.card.output.get('scale', 1.0))


def _card_size(card: ModelCard) -> tuple[int, int] | None:
    size = card.input.get('size')
    if size is None:
        return None
    if len(size) != 2 or min(size) < 1:
        raise ModelCardError(f'model card {card.name!r} has an invalid input size {size}')
    return int(size[0]), int(size[1])


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise EstimatorError(f'unknown backend {backend!r}; accepted: {", ".join(BACKENDS)}')


def check_threads(threads: int) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise EstimatorError(f'threads must be an integer >= 0 (0: the library default), got {threads!r}')


def load_network(model: str | Path, kind: str, backend: str, providers: str | Sequence[str],
                 threads: int, builtin: Sequence[str] = ()) -> LoadedModel:
    """Load a network model (card, .onnx or checkpoint) of ``kind`` 'stereo' or 'mono';
    ``builtin`` names methods without weights, listed when ``model`` names nothing known.

    Raises ModelCardError for missing/corrupt weights and unknown names, EstimatorError for a
    backend that cannot run ``model``.
    """
    check_backend(backend)
    check_threads(threads)
    is_checkpoint = Path(str(model)).suffix in CHECKPOINT_SUFFIXES
    if backend == 'opencv':
        raise EstimatorError(f"backend 'opencv' runs only opencv_sgbm and opencv_bm, not {str(model)!r}")
    if backend == 'torch' or (backend == 'auto' and is_checkpoint):
        if not is_checkpoint:
            raise EstimatorError(f"backend 'torch' needs a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}), "
                                 f'not {str(model)!r}')
        from .torch_backend import load_checkpoint_model
        card, make_runner, used = load_checkpoint_model(Path(model), providers, threads)
        loaded = LoadedModel(card, 'torch', make_runner, used)
    else:
        if is_checkpoint:
            raise EstimatorError(f'{model} is a checkpoint: use backend "torch" (or "auto"), or export it to '
                                 'ONNX with depth-ros-export')
        loaded = _load_onnx(model, providers, threads, builtin)
    if loaded.card.kind != kind:
        other = 'StereoEstimator' if loaded.card.kind == 'stereo' else 'DepthEstimator'
        raise EstimatorError(f'model {loaded.card.name!r} is a {loaded.card.kind} model; use {other}')
    if not loaded.card.trained:
        log.warning('model %r has untrained weights ("trained": false in its card): for tests only, its '
                    'output means nothing', loaded.card.name)
    return loaded


def _load_onnx(model: str | Path, providers: str | Sequence[str], threads: int,
               builtin: Sequence[str]) -> LoadedModel:
    try:
        card = load_card(find_card(model))
    except ModelCardError as e:
        if builtin and not Path(str(model)).suffix:
            raise ModelCardError(f'{e}; built-in methods: {", ".join(builtin)}') from None
        raise
    if card.input.get('layout', 'NCHW') != 'NCHW':
        raise ModelCardError(f'model {card.name!r}: input layout {card.input["layout"]!r} is not supported (NCHW)')
    paths = {k: card.graph_path(k) for k in card.stages}  # checks every file and its sha256 now
    used = resolve_providers(providers)
    names = INPUT_NAMES[card.kind]
    steps = bool(card.output.get('incremental'))  # step graphs read the tensors of the step before
    disabled = tuple(card.input.get('ort_disabled_optimizers', ()))
    return LoadedModel(card, 'onnxruntime', lambda k: OrtRunner(
        paths[k], used, threads, () if steps else names, disabled), used)
