"""Export registered networks to ONNX graphs plus a model card; ONNX parity.

Files written by :func:`export_model` into ``out_dir``:

- mono: ``<name>.onnx``, input ``image`` (1, 3, H, W) RGB in [0, 1] -> output ``depth``;
- stereo: ``<name>.s<k>.onnx`` for k = 1 .. ``model.max_stages``, inputs ``left``, ``right``
  (1, 3, H, W) -> output ``disparity`` (px), so the runtime picks how many stages to run
  (stereo models expose ``max_stages`` and a settable ``stages``);
- ``<name>.weights.npz``: the torch state dict as numpy arrays (float16 with ``fp16``), named
  by the card's ``torch_weights``, so trainers can fine-tune the exported network
  (:func:`.from_onnx.load_card_weights`);
- ``<name>.json``: the model card (see :mod:`depth_ros.model_card`).

Graphs use the TorchScript-based exporter (``dynamo=False``): it keeps AnyNet's scripted SPN
recurrence as an ONNX Loop whose trip count follows the input width; the dynamo exporter
cannot export that loop without unrolling it to a fixed width. H and W are dynamic axes
(multiples of ``model.multiple_of``) unless ``dynamic=False``; the batch is fixed to 1.

``fp16=True`` writes graphs (``<arch>_fp16...`` unless named) whose weights are stored as
float16 and cast to float32 when the session loads them: half the file size, float32
arithmetic and I/O, so ORT's CPU provider runs them unchanged; the card says
``output.precision: fp16``.

``depth-ros-export --checkpoint`` reads checkpoints (see :mod:`.checkpoint`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

from ..model_card import INPUT_NAMES, Graph, load_card, network_card, sha256_of
from ._registry import create_model, model_kind
from .from_onnx import save_weights, weights_entry

DEFAULT_INPUT_SIZE = (256, 512)
CARD_KEYS = ('trained', 'training', 'metrics', 'f_canonical')
FP16_MIN_ELEMENTS = 64  # smaller float constants (eps, scalars) stay float32


def _stage_counts(model: nn.Module, kind: str) -> list[int]:
    """Graphs to export: [1] for mono; 1 .. model.max_stages for stereo."""
    return [1] if kind == 'mono' else list(range(1, model.max_stages + 1))


def _export_graph(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, kind: str,
                  opset: int, dynamic: bool) -> None:
    """Trace ``model`` (eval mode) on ``inputs`` into the ONNX file ``path``."""
    names = INPUT_NAMES[kind]
    output = 'depth' if kind == 'mono' else 'disparity'
    axes = None
    if dynamic:
        axes = {n: {2: 'height', 3: 'width'} for n in names}
        axes[output] = {2: 'out_height', 3: 'out_width'}
    with torch.no_grad():
        torch.onnx.export(model, inputs, str(path), dynamo=False, opset_version=opset,
                          input_names=list(names), output_names=[output], dynamic_axes=axes,
                          do_constant_folding=True)


def store_weights_fp16(path: Path) -> None:
    """Rewrite the ONNX file ``path`` in place: float32 initializers with at least
    FP16_MIN_ELEMENTS values are stored as float16 and cast back to float32 on load."""
    model = onnx.load(str(path))
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < FP16_MIN_ELEMENTS:
            continue
        name = init.name
        half = numpy_helper.to_array(init).astype(np.float16)
        init.CopyFrom(numpy_helper.from_array(half, f'{name}__fp16'))
        casts.append(helper.make_node('Cast', [f'{name}__fp16'], [name], to=TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export_model(arch: str, out_dir: str | Path, *, name: str | None = None,
                 options: dict[str, Any] | None = None, state_dict: dict[str, Any] | None = None,
                 input_size: tuple[int, int] | None = None, opset: int = 17, dynamic: bool = True,
                 fp16: bool = False, card: dict[str, Any] | None = None, weights: bool = True) -> Path:
    """Export ``create_model(arch, **options)`` (with ``state_dict`` loaded if given) to ONNX.

    ``input_size`` (H, W) in px is the tracing size recorded in the card (default: the model's
    ``input_size`` attribute, else 256x512). ``card`` may give ``trained`` (default: whether a
    state_dict was given), ``training``, ``metrics`` and ``f_canonical`` (focal length in px of
    the canonical camera, mono). The stem is ``name``, default ``arch`` (plus ``_fp16`` with
    ``fp16``). ``weights``: also write ``<stem>.weights.npz``. Returns the path of the card
    ``<out_dir>/<stem>.json``.
    """
    options = dict(options or {})
    card = dict(card or {})
    unknown = sorted(set(card) - set(CARD_KEYS))
    if unknown:
        raise ValueError(f'unknown card keys {unknown}; accepted: {", ".join(CARD_KEYS)}')
    kind = model_kind(arch)
    model = create_model(arch, **options)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    model.eval()
    for attr in ('multiple_of', 'output_scale'):
        if not hasattr(model, attr):
            raise AttributeError(f'model {arch!r} must set the attribute {attr!r} to be exported')
    height, width = input_size or getattr(model, 'input_size', DEFAULT_INPUT_SIZE)
    if height % model.multiple_of or width % model.multiple_of:
        raise ValueError(f'input size {height}x{width} is not a multiple of {model.multiple_of}')

    stem = name or arch + ('_fp16' if fp16 else '')
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = tuple(torch.rand(1, 3, height, width) for _ in INPUT_NAMES[kind])
    graphs = []
    stages_before = getattr(model, 'stages', None)
    for k in _stage_counts(model, kind):
        path = out_dir / (f'{stem}.onnx' if kind == 'mono' else f'{stem}.s{k}.onnx')
        if kind == 'stereo':
            model.stages = k
        _export_graph(model, inputs, path, kind, opset, dynamic)
        if fp16:
            store_weights_fp16(path)
        graphs.append(Graph(stages=k, file=path.name, sha256=sha256_of(path)))
    if kind == 'stereo':
        model.stages = stages_before

    model_card = network_card(
        model, name=stem, arch=arch, kind=kind, graphs=graphs, options=options, size=(height, width),
        dynamic=dynamic, precision='fp16' if fp16 else 'fp32', info=card,
        trained=bool(state_dict is not None and card.get('trained', True)), directory=out_dir)
    if weights:
        archive = save_weights(model.state_dict(), out_dir / f'{stem}.weights.npz', fp16=fp16)
        model_card.torch_weights = weights_entry(archive, fp16)
    return model_card.save(out_dir / f'{stem}.json')


def onnx_parity(model: nn.Module, card_path: str | Path, *inputs: torch.Tensor,
                stages: int | None = None, seed: int = 0) -> float:
    """Max abs difference between ``model`` (eval, torch) and the card's ONNX graphs run by an
    ONNX Runtime CPU session, over every graph (or the one running ``stages`` stages).

    ``inputs``: (1, 3, H, W) RGB in [0, 1], one tensor (mono) or two (stereo); default: uniform
    random at the card's input size drawn with ``seed``. Units are the output's (px or m).
    """
    import onnxruntime as ort

    card = load_card(card_path)
    names = INPUT_NAMES[card.kind]
    if not inputs:
        gen = torch.Generator().manual_seed(seed)
        inputs = tuple(torch.rand(1, 3, *card.input['size'], generator=gen) for _ in names)
    if len(inputs) != len(names):
        raise ValueError(f'{card.kind} model takes {len(names)} inputs, got {len(inputs)}')
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    feeds = {n: x.detach().cpu().numpy().astype(np.float32) for n, x in zip(names, inputs)}
    was_training, stages_before = model.training, getattr(model, 'stages', None)
    model.eval()
    worst = 0.0
    try:
        for k in card.stages if stages is None else [stages]:
            if card.kind == 'stereo':
                model.stages = k
            with torch.no_grad():
                ref = model(*inputs).cpu().numpy()
            sess = ort.InferenceSession(str(card.graph_path(k)), opts, providers=['CPUExecutionProvider'])
            out = sess.run(None, feeds)[0]
            if out.shape != ref.shape:
                raise ValueError(f'graph {k}: ONNX output {out.shape} != torch output {ref.shape}')
            worst = max(worst, float(np.abs(out - ref).max()))
    finally:
        if card.kind == 'stereo':
            model.stages = stages_before
        model.train(was_training)
    return worst
