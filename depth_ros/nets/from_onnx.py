"""Torch weights of a network from its exported ONNX graph, and the ``<name>.weights.npz`` archives.

The exporter folds every BatchNorm that follows a convolution into that convolution, so most
parameters appear in the graph as anonymous fused initializers (``onnx::Conv_123``).
:func:`state_dict_from_onnx` recovers an exact state dict anyway:

1. build the card's network, give every convolution distinct random weights and biases and
   every BatchNorm distinct random statistics that make it a pure shift (weight =
   sqrt(running var + eps); distinct values, else the exporter would merge equal initializers);
   export it with :func:`.export.export_model` (same arch, options, size and opset) to a
   temporary *reference* graph;
2. the reference and the given graph come from the same exporter, so their initializers
   correspond position by position (op types and shapes are checked: a mismatch raises);
3. each anonymous reference initializer is found by value among the convolution weights; its
   fused bias minus the convolution's own bias is the shift of the BatchNorm folded into it;
4. the given graph's values are loaded: a convolution takes the fused weight and bias (the bias
   goes to the folded BatchNorm's shift when the convolution has none), folded BatchNorms become
   the identity, named initializers load by name.

The result computes the graph's function exactly (up to float rounding). Archives store the
state dict as plain arrays (no pickle), float16 when the graph's weights are float16; a card
names its archive under ``torch_weights: {"file", "sha256", "precision"}`` (recovered archives
also say which graph they came from and which training-only entries the graph lacked).

    python -m depth_ros.nets.from_onnx models/anynet_spn8.json [--graph old.s4.onnx]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

from ..model_card import ModelCard, ModelCardError, find_card, load_card, sha256_of
from ._registry import create_model

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)
BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
FP16_MIN_ELEMENTS = 64  # as depth_ros.nets.export: smaller tensors stay float32
MATCH_TOL = 1e-4        # relative: reference values are exact up to the folding's rounding


def graph_initializers(path: str | Path) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """(name, float32/int array) of every initializer in file order (``__fp16`` copies under their
    float32 name), and the graph's op types in order (the fp16 Casts left out)."""
    model = onnx.load(str(path))
    inits = []
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        name = init.name.removesuffix('__fp16')
        inits.append((name, arr.astype(np.float32) if arr.dtype == np.float16 else arr))
    ops = [n.op_type for n in model.graph.node
           if not (n.op_type == 'Cast' and n.input[0].endswith('__fp16'))]
    return inits, ops


def _randomize(model: nn.Module, seed: int = 0) -> None:
    """Distinct random conv weights/biases; BatchNorms random shifts by bias - running mean
    (weight = sqrt(running_var + eps), so the scale is 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, CONVS):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen))
            elif isinstance(m, BNS):
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
                m.weight.copy_(torch.sqrt(m.running_var + m.eps))
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))


def _find(value: np.ndarray, candidates: dict[str, torch.Tensor]) -> str | None:
    """Name of the candidate equal to ``value`` (same shape, within MATCH_TOL), if exactly one."""
    hits = [name for name, t in candidates.items() if tuple(t.shape) == value.shape
            and np.allclose(t.numpy(), value, rtol=MATCH_TOL, atol=MATCH_TOL)]
    if len(hits) > 1:
        raise ValueError(f'initializer of shape {value.shape} matches several parameters: {hits}')
    return hits[0] if hits else None


def _layout(model: nn.Module) -> tuple[dict[str, str], dict[str, str]]:
    """(conv weight name -> conv module name, BN shift name -> BN module name)."""
    convs = {f'{n}.weight': n for n, m in model.named_modules() if isinstance(m, CONVS)}
    bns = {f'{n}.bias': n for n, m in model.named_modules() if isinstance(m, BNS)}
    return convs, bns


def state_dict_from_onnx(graph: str | Path, arch: str, options: dict[str, Any] | None = None, *,
                         input_size: tuple[int, int] = (256, 512), dynamic: bool = True,
                         opset: int = 17, seed: int = 0) -> tuple[dict[str, torch.Tensor], list[str]]:
    """State dict of ``create_model(arch, **options)`` computing what the ONNX file ``graph``
    (exported by :func:`.export.export_model` with these settings; for stereo networks the graph
    with all stages) computes, and the entries the graph does not hold (training-only modules,
    e.g. auxiliary heads: they keep the network's initialization, drawn with ``seed``).
    Raises ValueError when the graphs or values do not correspond."""
    from .export import export_model

    options = dict(options or {})
    ref_model = create_model(arch, **options).eval()
    _randomize(ref_model)
    ref_state = {k: v.detach().clone() for k, v in ref_model.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        card_path = export_model(arch, tmp, name='reference', options=options, state_dict=ref_state,
                                 input_size=input_size, opset=opset, dynamic=dynamic, weights=False)
        ref_card = load_card(card_path)
        ref_inits, ref_ops = graph_initializers(ref_card.graph_path())
    inits, ops = graph_initializers(graph)
    if ops != ref_ops:
        raise ValueError(f'{graph}: its ops differ from a fresh export of {arch} {options} '
                         f'({len(ops)} vs {len(ref_ops)} nodes): not exported by this exporter with these options')
    if [(n, a.shape) for n, a in inits if not n.startswith('onnx::')] != \
            [(n, a.shape) for n, a in ref_inits if not n.startswith('onnx::')] or \
            [a.shape for _, a in inits] != [a.shape for _, a in ref_inits]:
        raise ValueError(f'{graph}: its initializers do not correspond to a fresh export of {arch} {options}')

    torch.manual_seed(seed)
    model = create_model(arch, **options)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    convs, bns = _layout(model)
    conv_weights = {k: ref_state[k] for k in convs}
    bn_shifts = {k: ref_state[k] - ref_state[k.removesuffix('bias') + 'running_mean'] for k in bns}
    assigned: set[str] = set()

    def put(key: str, value: np.ndarray | torch.Tensor) -> None:
        if key in assigned:
            raise ValueError(f'{graph}: {key} is given twice')
        state[key] = torch.from_numpy(np.array(value)).to(state[key].dtype).reshape(state[key].shape)
        assigned.add(key)

    def identity_bn(bn: str, shift: np.ndarray | None) -> None:
        put(f'{bn}.weight', np.ones(state[f'{bn}.weight'].shape))
        put(f'{bn}.running_mean', np.zeros(state[f'{bn}.running_mean'].shape))
        eps = model.get_submodule(bn).eps
        put(f'{bn}.running_var', np.full(state[f'{bn}.running_var'].shape, 1.0 - eps))
        put(f'{bn}.bias', np.zeros(state[f'{bn}.bias'].shape) if shift is None else shift)

    pending_conv: str | None = None  # conv whose fused weight was just seen: its fused bias follows
    for (name, value), (_, ref_value) in zip(inits, ref_inits):
        if not name.startswith('onnx::'):
            if name in state:
                put(name, value)
            continue
        if pending_conv is not None:
            conv = model.get_submodule(pending_conv)
            own = ref_state[f'{pending_conv}.bias'].numpy() if conv.bias is not None else 0.0
            shift = ref_value - own
            bn = None if np.allclose(shift, 0.0, atol=MATCH_TOL) else _find(shift, bn_shifts)
            if bn is None and not np.allclose(shift, 0.0, atol=MATCH_TOL):
                raise ValueError(f'{graph}: the fused bias after {pending_conv}.weight matches no BatchNorm')
            if conv.bias is not None:
                put(f'{pending_conv}.bias', value)
            if bn is not None:
                identity_bn(bns[bn], None if conv.bias is not None else value)
            elif conv.bias is None:
                raise ValueError(f'{graph}: {pending_conv} has no bias and no BatchNorm, yet a fused bias')
            pending_conv = None
            continue
        key = _find(ref_value, conv_weights)
        if key is not None:
            put(key, value)
            pending_conv = convs[key]
        elif not np.array_equal(value, ref_value):  # constants are the same in both graphs
            raise ValueError(f'{graph}: anonymous initializer {name} {value.shape} matches no parameter')
    missing = [k for k in state if k not in assigned and not k.endswith('num_batches_tracked')]
    return state, missing


def save_weights(state: dict[str, torch.Tensor], path: str | Path, fp16: bool = False) -> Path:
    """Write a state dict as an ``.npz`` of arrays; with ``fp16`` float tensors of at least
    FP16_MIN_ELEMENTS values as float16, as the fp16 graphs store them (BatchNorm statistics stay
    float32: the identity's 1 - eps is not a float16 number)."""
    arrays = {}
    for k, v in state.items():
        a = v.detach().cpu().numpy()
        if fp16 and a.dtype == np.float32 and a.size >= FP16_MIN_ELEMENTS and '.running_' not in k:
            a = a.astype(np.float16)
        arrays[k] = a
    path = Path(path)
    with open(path, 'wb') as f:
        np.savez(f, **arrays)
    return path


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """State dict of an archive written by :func:`save_weights` (float16 back to float32)."""
    with np.load(Path(path), allow_pickle=False) as data:
        return {k: torch.from_numpy(data[k].astype(np.float32) if data[k].dtype == np.float16 else data[k])
                for k in data.files}


def weights_entry(path: Path, fp16: bool) -> dict[str, str]:
    """The card's ``torch_weights`` entry of an archive."""
    return {'file': path.name, 'sha256': sha256_of(path), 'precision': 'fp16' if fp16 else 'fp32'}


def _card(card: str | Path | ModelCard) -> ModelCard:
    return card if isinstance(card, ModelCard) else load_card(find_card(card))


def load_card_weights(card: str | Path | ModelCard) -> nn.Module:
    """The torch network of a model card (a ModelCard, card path or shipped model name) with the
    weights of its ``torch_weights`` archive (sha256 checked), in eval mode."""
    card = _card(card)
    entry = card.torch_weights
    if not entry:
        raise ModelCardError(f'model card {card.name!r} names no torch weights (torch_weights)')
    path = card.directory / entry['file']
    if not path.is_file():
        raise ModelCardError(f'torch weights {path} named by model card {card.name!r} do not exist')
    if entry.get('sha256') and sha256_of(path) != entry['sha256']:
        raise ModelCardError(f'torch weights {path} do not match the sha256 in model card {card.name!r}')
    model = create_model(card.arch, **card.options)
    model.load_state_dict(read_weights(path))
    return model.eval()


def recover_card_weights(card: str | Path | ModelCard, graph: str | Path | None = None,
                         source: str = '') -> Path:
    """Recover the card's torch weights from ``graph`` (default: its graph with the most stages),
    write ``<name>.weights.npz`` beside the card (float16 when the card's precision is fp16) and
    add ``torch_weights`` to the card file (``source``: where the graph came from, default its
    file name). Returns the archive's path."""
    card = _card(card)
    graph = Path(graph) if graph else card.graph_path()
    state, missing = state_dict_from_onnx(graph, card.arch, card.options, input_size=tuple(card.input['size']),
                                          dynamic=bool(card.input.get('dynamic', True)))
    fp16 = card.output.get('precision') == 'fp16'
    path = save_weights(state, card.directory / f'{card.name}.weights.npz', fp16=fp16)
    card_file = card.directory / f'{card.name}.json'
    data = json.loads(card_file.read_text())
    data['torch_weights'] = weights_entry(path, fp16)
    data['torch_weights']['recovered_from'] = source or graph.name
    if missing:
        modules = sorted({k.rsplit('.', 1)[0].split('.')[0] for k in missing})
        data['torch_weights']['not_in_graph'] = (
            f'{len(missing)} entries of {", ".join(modules)} (training-only): fresh initialization, seed 0')
    card_file.write_text(json.dumps(data, indent=2) + '\n')
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog='python -m depth_ros.nets.from_onnx', description=__doc__.split('\n')[0])
    p.add_argument('card', help='model card path or shipped model name')
    p.add_argument('--graph', type=Path, help='full ONNX graph to read (default: the card\'s largest)')
    p.add_argument('--source', default='', help='where the graph came from, recorded in the card')
    args = p.parse_args(argv)
    path = recover_card_weights(args.card, args.graph, args.source)
    print(f'wrote {path} ({path.stat().st_size / 1e6:.2f} MB)')


if __name__ == '__main__':
    main()
