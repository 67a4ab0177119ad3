"""Split an exported AnyNet into incremental step graphs (onnx only, no torch).

``depth-ros-export`` writes one complete graph per stage count (``<name>.s<k>.onnx`` runs stages
1 .. k, recomputing the earlier ones). This tool cuts the largest of them at the stage
boundaries, so that step k continues from step k-1's tensors:

- step 1: ``pair`` (2, 3, H, W: left and right, normalized by the runtime as the card's
  ``input.normalize`` says) -> ``coarse`` (stage 1 at 1/16), ``f16``, ``f8``, ``f4`` (encoder
  features of the pair at 1/16, 1/8, 1/4);
- step 2: ``previous``, ``f16``, ``f8`` -> ``residual`` (stage 2's, at 1/8), ``up8`` (decoder at 1/8);
- step 3: ``previous``, ``up8``, ``f4`` -> ``residual`` (stage 3's, at 1/4);
- step 4 (SPN): ``previous``, ``left_normalized`` (``pair[:1]``) -> ``coarse`` (at 1/4).

The network's last op of each stage, a bilinear (half-pixel) upsampling to H x W of ``coarse``,
or of ``residual`` then added to the stage before, is left to the runtime (OpenCV's resize is
~8x faster than ONNX Runtime's there, the same values to 1e-5 px); ``previous`` is the full-size
disparity of the stage before. The card's graphs keep their ``stages`` numbers and gain
``"incremental": true`` in ``output``; the runtime feeds each step the tensors of the steps
before (:class:`depth_ros.inference.stereo.StereoEstimator`). Every node comes from the full
graph, so running all steps computes what the full graph computes, once. Before cutting,
:func:`depth_ros.nets.anynet_rewrites.rewrite_all` rewrites the graph for ONNX Runtime's CPU
kernels (same arithmetic): 3D cost-volume convolutions as stacked 2D ones, the stem on 4x4
pixel phases, the soft argmin without Softmax, the warps as row gathers, the SPN's column loop
as a Scan, and the small feature and SPN convolutions kept out of the NCHWc transformer, which
then blocks the rest.

    python -m depth_ros.nets.anynet_steps models/anynet_spn8.json
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import onnx
from onnx import helper, numpy_helper

from .anynet_rewrites import _referenced, rewrite_all

ENCODER = {f'f{s}': f'/features/down{s}/down{s}.2/down{s}.2.2/Conv_output_0' for s in (16, 8, 4)}
UP8 = '/features/up8/up8.1/up8.1.2/Conv_output_0'


def _stage_outputs(graph: onnx.GraphProto) -> list[str]:
    """Tensor names of the full-resolution disparity of stage 1, 2, 3 in a full AnyNet graph:
    stage k > 1 is the top-level Add of stage k-1's estimate and its upsampled residual."""
    resized = {o for n in graph.node if n.op_type == 'Resize' and n.name.count('/') == 1 for o in n.output}
    adds = [n for n in graph.node if n.op_type == 'Add' and n.name.count('/') == 1 and len(n.input) == 2
            and n.input[1] in resized]
    first = next(n.input[0] for n in adds if n.input[0] in resized)
    chain = [first]
    for _ in range(2):
        step = next((n for n in adds if n.input[0] == chain[-1]), None)
        if step is None:
            break
        chain.append(step.output[0])
    return chain


def extract(model: onnx.ModelProto, inputs: dict[str, str], outputs: dict[str, str]) -> onnx.ModelProto:
    """The subgraph of ``model`` computing ``outputs`` (new name -> tensor) from ``inputs``
    (new name -> tensor, all float32 NCHW with dynamic sizes) and the initializers."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    boundary = set(inputs.values())
    keep: list[onnx.NodeProto] = []
    seen: set[int] = set()
    todo = list(outputs.values())
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if name in boundary or node is None or id(node) in seen:
            continue
        seen.add(id(node))
        keep.append(node)
        todo.extend(_referenced([node]))
    nodes = [n for n in graph.node if id(n) in seen]  # original (topological) order
    used = _referenced(nodes) | set(outputs.values())
    inits = [i for i in graph.initializer if i.name in used]
    missing = used - {o for n in nodes for o in n.output} - {i.name for i in inits} - boundary
    if missing:
        raise ValueError(f'cut leaves tensors without producer: {sorted(missing)[:5]}')
    renamed = {old: new for new, old in inputs.items()}
    glue = [helper.make_node('Identity', [old], [new], name=f'out_{new}') for new, old in outputs.items()
            if new != old]
    sub = helper.make_graph(nodes + glue, graph.name, [
        helper.make_tensor_value_info(new, onnx.TensorProto.FLOAT, [f'{new}_{d}' for d in 'nchw'])
        for new in inputs], [
        helper.make_tensor_value_info(new, onnx.TensorProto.FLOAT, [f'{new}_{d}' for d in 'nchw'])
        for new in outputs], inits)
    _rename(sub, renamed)
    out = helper.make_model(sub, opset_imports=model.opset_import, producer_name='depth_ros.anynet_steps')
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out


def _rename(graph: onnx.GraphProto, names: dict[str, str]) -> None:
    """Rename tensors read by nodes (recursively in subgraphs); graph inputs already carry the new names."""
    for n in graph.node:
        for i, name in enumerate(n.input):
            n.input[i] = names.get(name, name)
        for attr in n.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename(attr.g, names)


def _normalization(graph: onnx.GraphProto) -> tuple[str, str, dict[str, list[float]]]:
    """(normalized left tensor, stacked normalized pair tensor, {'mean', 'inv_std'}) of a full
    AnyNet graph, whose Normalize is (x - mean) * inv_std on each image, then concatenated."""
    producer = {o: n for n in graph.node for o in n.output}
    inits = {i.name: i for i in graph.initializer}

    def value(name: str) -> list[float]:
        node = producer.get(name)
        tensor = node.attribute[0].t if node is not None and node.op_type == 'Constant' else inits[name]
        return [float(v) for v in numpy_helper.to_array(tensor).ravel()]

    sub = next(n for n in graph.node if n.op_type == 'Sub' and n.input[0] == 'left')
    mul = next(n for n in graph.node if n.op_type == 'Mul' and n.input[0] == sub.output[0])
    concat = next(n for n in graph.node if n.op_type == 'Concat' and n.input[0] == mul.output[0])
    return mul.output[0], concat.output[0], {'mean': value(sub.input[1]), 'inv_std': value(mul.input[1])}


def split(model: onnx.ModelProto, spn: bool) -> tuple[list[onnx.ModelProto], dict[str, list[float]]]:
    """The step graphs (2-4 of them) of a full AnyNet graph running all its stages, and the input
    normalization now done by the runtime (step 1 reads the normalized pair, stacked)."""
    left, pair, normalize = _normalization(model.graph)
    stage = _stage_outputs(model.graph)
    final = model.graph.output[0].name
    ends = stage[:3] if spn else stage[:2] + [final]
    out = [_before_upsampling(model.graph, end) for end in ends + [final] * spn]
    steps = [extract(model, {'pair': pair}, {**out[0], **ENCODER}),
             extract(model, {'previous': ends[0], 'f16': ENCODER['f16'], 'f8': ENCODER['f8']}, {**out[1], 'up8': UP8}),
             extract(model, {'previous': ends[1], 'up8': UP8, 'f4': ENCODER['f4']}, out[2])]
    if spn:
        steps.append(extract(model, {'previous': ends[2], 'left_normalized': left}, out[3]))
    return steps, normalize


def _before_upsampling(graph: onnx.GraphProto, name: str) -> dict[str, str]:
    """{'coarse': x} when tensor ``name`` is Resize(x), {'residual': r} when it is the stage before
    + Resize(r), each Resize a bilinear half-pixel upsampling (what the runtime then does)."""
    producer = {o: n for n in graph.node for o in n.output}
    node = producer[name]
    while node.op_type == 'Identity':
        node = producer[node.input[0]]
    key = 'coarse'
    if node.op_type == 'Add':
        key, node = 'residual', producer[node.input[1]]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type != 'Resize' or attrs.get('mode') != b'linear' or \
            attrs.get('coordinate_transformation_mode') != b'half_pixel':
        raise ValueError(f'{name} is not a bilinear half-pixel upsampling (+ the stage before): {node.op_type}')
    return {key: node.input[0]}


def split_card(card_path: str | Path) -> list[Path]:
    """Replace the graphs of an AnyNet card (in place) by incremental step graphs, same file names."""
    from ..model_card import sha256_of  # light import: the card module needs no torch either
    card_path = Path(card_path)
    data = json.loads(card_path.read_text())
    if data.get('output', {}).get('incremental'):
        raise ValueError(f'{card_path} already lists incremental step graphs')
    graphs = sorted(data['graphs'], key=lambda g: g['stages'])
    full = onnx.load(card_path.parent / graphs[-1]['file'])
    steps, normalize = split(rewrite_all(full), spn=len(graphs) == 4)
    written = []
    for g, step in zip(graphs, steps):
        path = card_path.parent / g['file']
        onnx.save(step, path)
        g['sha256'] = sha256_of(path)
        written.append(path)
    data['graphs'] = graphs
    data['output']['incremental'] = True
    data['input']['normalize'] = normalize
    card_path.write_text(json.dumps(data, indent=2) + '\n')
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('cards', nargs='+', help='AnyNet model card(s) to rewrite in place')
    for card in parser.parse_args(argv).cards:
        for path in split_card(card):
            print(f'wrote {path}')


if __name__ == '__main__':
    main()
