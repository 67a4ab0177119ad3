"""Split an exported AnyNet into incremental step graphs (onnx only, no torch).

``depth-ros-export`` writes one complete graph per stage count (``<name>.s<k>.onnx`` runs stages
1 .. k, recomputing the earlier ones). This tool cuts the largest of them at the stage
boundaries, so that step k continues from step k-1's tensors:

- step 1: ``pair`` (2, 3, H, W: left and right, normalized by the runtime as the card's
  ``input.normalize`` says) -> ``disparity`` (stage 1), ``f16``, ``f8``, ``f4`` (encoder
  features of the pair at 1/16, 1/8, 1/4);
- step 2: ``previous``, ``f16``, ``f8`` -> ``disparity`` (stage 2), ``up8`` (decoder at 1/8);
- step 3: ``previous``, ``up8``, ``f4`` -> ``disparity`` (stage 3);
- step 4 (SPN): ``previous``, ``left_normalized`` (``pair[:1]``) -> ``disparity``.

``previous`` is the disparity the step before returned. The card's graphs keep their
``stages`` numbers and gain ``"incremental": true`` in ``output``; the runtime feeds each step
the tensors of the steps before (:class:`depth_ros.inference.stereo.StereoEstimator`). Every
node comes from the full graph, so running all steps computes what the full graph computes,
once; two rewrites keep the arithmetic and suit ONNX Runtime's CPU kernels: the 3D
convolutions of the cost-volume regularizers become stacked 2D ones (:func:`conv3d_as_2d`,
2-3x faster), and the 1-16 channel convolutions of the feature extractor and the SPN become
depth-1 Conv3d, which ONNX Runtime's NCHWc transformer leaves alone (:func:`outside_nchwc`),
so that it blocks only the regularizers' 16-48 channel convolutions (1.6-2x faster).

    python -m depth_ros.nets.anynet_steps models/anynet_spn8.json
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

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


def _referenced(nodes: Iterable[onnx.NodeProto]) -> set[str]:
    """Every tensor name nodes read, including implicitly from their subgraphs (Loop bodies)."""
    names: set[str] = set()
    for n in nodes:
        names.update(i for i in n.input if i)
        for attr in n.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                inner = attr.g
                names.update(_referenced(inner.node) - {o for m in inner.node for o in m.output}
                             - {i.name for i in inner.input} - {i.name for i in inner.initializer})
    return names


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


def _array(name: str, inits: dict[str, onnx.TensorProto], producer: dict[str, onnx.NodeProto]) -> np.ndarray:
    """A constant tensor: an initializer, possibly behind Identity nodes (the exporter's dedup)."""
    while name not in inits:
        name = producer[name].input[0]  # KeyError: not a constant
    return numpy_helper.to_array(inits[name])


def _const(graph: onnx.GraphProto, name: str, values: np.ndarray) -> str:
    graph.initializer.append(numpy_helper.from_array(np.asarray(values), name))
    return name


def conv3d_as_2d(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite each cost-volume regularizer (``/nets3d.k/``: BN, ReLU, 3x3x3 Conv on (B, C, D, h, w))
    to run on (B*D, C, h, w): every Conv3d becomes one Conv2d with the three depth taps stacked
    as output channels, whose outputs are summed shifted by -1, 0, +1 along D. The same
    arithmetic (up to float summation order); ONNX Runtime's 2D convolutions are 2-3x faster
    on these 1-16 channel volumes."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    inits = {i.name: i for i in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    volume: dict[str, str] = {}  # net prefix -> (B, D, h, w) tensor the net's volume came from
    for n in graph.node:
        prefix = next((p for p in (f'/nets3d.{k}/' for k in range(3)) if n.name.startswith(p)), None)
        if n.op_type == 'Unsqueeze':
            consumers = [m for m in graph.node if n.output[0] in m.input]
            net = next((p for p in (f'/nets3d.{k}/' for k in range(3)) if consumers and
                        consumers[0].name.startswith(p)), None)
            if net:
                volume[net] = n.input[0]
                nodes.append(helper.make_node('Reshape', [n.input[0], _const(graph, f'{net}flat', np.array(
                    [-1, 1, 0, 0], np.int64))], list(n.output), name=f'{net}to2d'))
                continue
        if n.op_type == 'Squeeze' and producer[n.input[0]].name.split('/')[1:2] and \
                producer[n.input[0]].name.startswith('/nets3d.'):
            net = '/' + producer[n.input[0]].name.split('/')[1] + '/'
            shape = f'{net}volume_shape'
            nodes += [helper.make_node('Shape', [volume[net]], [shape], name=shape),
                      helper.make_node('Reshape', [n.input[0], shape], list(n.output), name=f'{net}to3d')]
            continue
        if prefix is None or n.op_type != 'Conv':
            nodes.append(n)
            continue
        w = _array(n.input[1], inits, producer)
        cout = w.shape[0]
        stacked = np.concatenate([w[:, :, k] for k in range(3)], 0)
        base = n.name[:-len('/Conv')]
        inputs = [n.input[0], _const(graph, f'{base}/w2d', stacked)]
        if len(n.input) > 2:
            b = _array(n.input[2], inits, producer)
            zero = np.zeros_like(b)
            inputs.append(_const(graph, f'{base}/b2d', np.concatenate([zero, b, zero])))
        t = {k: f'{base}/{k}' for k in ('y', 'hw', 'bd', 'sh6', 'y6', 'g1', 'a0', 'a', 'c0', 'c', 's',
                                        'sum', 'sh4', 'yshape')}
        i64 = lambda name, v: _const(graph, f'{base}/{name}', np.array(v, np.int64))  # noqa: E731
        nodes += [
            helper.make_node('Conv', inputs, [t['y']], name=f'{base}/Conv2d', kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node('Shape', [t['y']], [t['yshape']], name=f'{base}/yshape'),
            helper.make_node('Slice', [t['yshape'], i64('s2', [2]), i64('e4', [4])], [t['hw']], name=f'{base}/hw'),
            helper.make_node('Shape', [volume[prefix]], [t['bd']], name=f'{base}/bd', end=2),
            helper.make_node('Concat', [t['bd'], i64('g', [3, cout]), t['hw']], [t['sh6']], name=f'{base}/sh6', axis=0),
            helper.make_node('Reshape', [t['y'], t['sh6']], [t['y6']], name=f'{base}/y6'),
            # tap k of output depth d is y6[:, d + k - 1, k]: slice each tap straight from y6, shift by padding
            helper.make_node('Slice', [t['y6'], i64('s1', [1]), i64('e2', [2]), i64('ax', [2])], [t['g1']],
                             name=f'{base}/g1'),
            helper.make_node('Slice', [t['y6'], i64('s00', [0, 0]), i64('em1', [-1, 1]), i64('ax12', [1, 2])],
                             [t['a0']], name=f'{base}/a0'),
            helper.make_node('Pad', [t['a0'], i64('pa', [0, 1, 0, 0, 0, 0] + [0] * 6)], [t['a']], name=f'{base}/a'),
            helper.make_node('Slice', [t['y6'], i64('s12', [1, 2]), i64('ebig', [2 ** 62, 3]), i64('ax12b', [1, 2])],
                             [t['c0']], name=f'{base}/c0'),
            helper.make_node('Pad', [t['c0'], i64('pc', [0] * 6 + [0, 1, 0, 0, 0, 0])], [t['c']], name=f'{base}/c'),
            helper.make_node('Add', [t['a'], t['g1']], [t['s']], name=f'{base}/add0'),
            helper.make_node('Add', [t['s'], t['c']], [t['sum']], name=f'{base}/add1'),
            helper.make_node('Concat', [i64('mc', [-1, cout]), t['hw']], [t['sh4']], name=f'{base}/sh4', axis=0),
            helper.make_node('Reshape', [t['sum'], t['sh4']], list(n.output), name=f'{base}/to4d')]
    del graph.node[:]
    graph.node.extend(nodes)
    used = _referenced(graph.node)
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    return model


def outside_nchwc(model: onnx.ModelProto, prefixes: tuple[str, ...] = ('/features/', '/spn/')) -> onnx.ModelProto:
    """Rewrite each 2D Conv whose node name starts with one of ``prefixes`` as a Conv3d with a
    depth-1 kernel between Unsqueeze and Squeeze (a single consuming Relu moves inside, where
    ONNX Runtime fuses it): the same arithmetic, bit for bit. ONNX Runtime's NCHWc transformer
    only blocks 2D convolutions and pads their outputs to 8 or 16 channels, which makes the
    1-channel full-resolution stem 4x slower; the regularizers' 16-48 channel convolutions,
    left 2D, gain 1.6-2x from it."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    inits = {i.name: i for i in graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for name in _referenced([n]):
            readers.setdefault(name, []).append(n)
    outputs = {o.name for o in graph.output}
    axis = _const(graph, '/depth_axis', np.array([2], np.int64))
    nodes: list[onnx.NodeProto] = []
    moved: set[int] = set()  # Relu nodes now inside a Conv3d's Unsqueeze/Squeeze
    for n in graph.node:
        if id(n) in moved:
            continue
        if n.op_type != 'Conv' or not n.name.startswith(prefixes):
            nodes.append(n)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        w = _array(n.input[1], inits, producer)
        pads = list(attrs.get('pads', [0, 0, 0, 0]))
        conv = dict(kernel_shape=[1, *w.shape[2:]], pads=[0, pads[0], pads[1], 0, pads[2], pads[3]],
                    strides=[1, *attrs.get('strides', [1, 1])], dilations=[1, *attrs.get('dilations', [1, 1])],
                    group=attrs.get('group', 1))
        base = n.name
        inputs = [f'{base}/x5', _const(graph, f'{base}/w5', w[:, :, None]), *n.input[2:]]
        after = readers.get(n.output[0], [])
        relu = after[0] if len(after) == 1 and after[0].op_type == 'Relu' and n.output[0] not in outputs else None
        out = list(relu.output) if relu is not None else list(n.output)
        nodes += [helper.make_node('Unsqueeze', [n.input[0], axis], [inputs[0]], name=f'{base}/to5d'),
                  helper.make_node('Conv', inputs, [f'{base}/y5'], name=f'{base}/Conv3d', **conv)]
        if relu is not None:
            moved.add(id(relu))
            nodes.append(helper.make_node('Relu', [f'{base}/y5'], [f'{base}/r5'], name=f'{base}/Relu3d'))
        nodes.append(helper.make_node('Squeeze', [nodes[-1].output[0], axis], out, name=f'{base}/to4d'))
    del graph.node[:]
    graph.node.extend(nodes)
    used = _referenced(graph.node)
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    return model


def expectation_without_softmax(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite each soft argmin, ``ReduceSum(Softmax(z, axis=1) * values, axis=1)``, as
    ``sum(e * values) / sum(e)`` with ``e = exp(z - max(z))`` over axis 1: the same value up to float
    rounding (1e-6 px); ONNX Runtime's Softmax on a non-last axis transposes twice, 4x slower here."""
    graph = model.graph
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for name in _referenced([n]):
            readers.setdefault(name, []).append(n)
    opset = next(o.version for o in model.opset_import if o.domain in ('', 'ai.onnx'))

    def sole(name: str, op: str) -> onnx.NodeProto | None:
        """The one node reading tensor ``name``, if there is one and it is an ``op``."""
        found = readers.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op else None

    replace: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for n in graph.node:
        axis = next((a.i for a in n.attribute if a.name == 'axis'), -1)
        mul = sole(n.output[0], 'Mul') if n.op_type == 'Softmax' and axis == 1 else None
        total = sole(mul.output[0], 'ReduceSum') if mul is not None else None
        keepdims = next((a.i for a in total.attribute if a.name == 'keepdims'), 1) if total is not None else 0
        if total is None or len(total.input) < 2 or keepdims != 1:
            continue
        base, values, axes = n.name, next(i for i in mul.input if i != n.output[0]), total.input[1]
        t = {k: f'{base}/{k}' for k in ('max', 'shifted', 'e', 'weighted', 'num', 'den')}
        replace[id(total)] = [  # where every input is ready
            helper.make_node('ReduceMax', [n.input[0], axes] if opset >= 18 else [n.input[0]], [t['max']],
                             name=f'{base}/max', keepdims=1, **({} if opset >= 18 else {'axes': [1]})),
            helper.make_node('Sub', [n.input[0], t['max']], [t['shifted']], name=f'{base}/shift'),
            helper.make_node('Exp', [t['shifted']], [t['e']], name=f'{base}/exp'),
            helper.make_node('Mul', [t['e'], values], [t['weighted']], name=f'{base}/weigh'),
            helper.make_node('ReduceSum', [t['weighted'], axes], [t['num']], name=f'{base}/num', keepdims=1),
            helper.make_node('ReduceSum', [t['e'], axes], [t['den']], name=f'{base}/den', keepdims=1),
            helper.make_node('Div', [t['num'], t['den']], list(total.output), name=f'{base}/expectation')]
        dropped.update((id(n), id(mul)))
    nodes = [m for n in graph.node if id(n) not in dropped for m in replace.get(id(n), [n])]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


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
    steps = [extract(model, {'pair': pair},
                     {'disparity': ends[0], **{k: v for k, v in ENCODER.items()}}),
             extract(model, {'previous': ends[0], 'f16': ENCODER['f16'], 'f8': ENCODER['f8']},
                     {'disparity': ends[1], 'up8': UP8}),
             extract(model, {'previous': ends[1], 'up8': UP8, 'f4': ENCODER['f4']}, {'disparity': ends[2]})]
    if spn:
        steps.append(extract(model, {'previous': ends[2], 'left_normalized': left}, {'disparity': final}))
    return steps, normalize


def split_card(card_path: str | Path) -> list[Path]:
    """Replace the graphs of an AnyNet card (in place) by incremental step graphs, same file names."""
    from ..model_card import sha256_of  # light import: the card module needs no torch either
    card_path = Path(card_path)
    data = json.loads(card_path.read_text())
    if data.get('output', {}).get('incremental'):
        raise ValueError(f'{card_path} already lists incremental step graphs')
    graphs = sorted(data['graphs'], key=lambda g: g['stages'])
    full = onnx.load(card_path.parent / graphs[-1]['file'])
    rewritten = expectation_without_softmax(outside_nchwc(conv3d_as_2d(full)))
    steps, normalize = split(rewritten, spn=len(graphs) == 4)
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
