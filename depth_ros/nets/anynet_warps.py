"""The residual stages' horizontal warps of an exported AnyNet as row gathers (onnx only, no torch):
one of the graph rewrites :func:`depth_ros.nets.anynet_rewrites.rewrite_all` applies."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .anynet_rewrites import _attrs, _const, _prune


def warp_as_gather(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite each horizontal warp, GridSample (bilinear, zero padding, align_corners 0) of X
    (B, C, h, w) on a grid stacked from x coordinates gx (B, S, h, w) of a disparity plus S
    consecutive integer shifts and the rows' own centres (as :func:`depth_ros.nets.anynet.warp_right`
    builds it), as one GatherElements along each row of the S + 1 columns floor(x) + 1 - j,
    j = 0 .. S, of the first shift's x (zero outside), adjacent ones blended by its fraction: the
    same values (to 1e-6; every shift has that fraction), 3-4x faster than ONNX Runtime's
    GridSample. Other GridSamples are left as they are."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    inits = {i.name: i for i in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    for n in graph.node:
        attrs = _attrs(n)
        grid = producer.get(n.input[1]) if n.op_type == 'GridSample' else None
        stack = producer.get(grid.input[0]) if grid is not None and grid.op_type == 'Reshape' else None
        gx = producer[stack.input[0]].input[0] if stack is not None and stack.op_type == 'Concat' else ''
        shifts = _shift_count(gx, producer, inits) if gx else 0  # Unsqueeze(gx, -1): x coordinates in [-1, 1]
        if not shifts or len(stack.input) != 2 or attrs.get('align_corners', 0) \
                or attrs.get('mode', b'bilinear') != b'bilinear' or attrs.get('padding_mode', b'zeros') != b'zeros':
            nodes.append(n)
            continue
        b = n.name
        made: set[str] = set()

        def const(name: str, value: object, dtype: type) -> str:
            if f'{b}/{name}' not in made:
                made.add(_const(graph, f'{b}/{name}', np.array(value, dtype)))
            return f'{b}/{name}'
        i64 = lambda name, v: const(name, v, np.int64)  # noqa: E731
        f32 = lambda name, v: const(name, v, np.float32)  # noqa: E731

        def node(op: str, inputs: list[str], name: str, **kw) -> str:
            nodes.append(helper.make_node(op, inputs, [f'{b}/{name}'], name=f'{b}/{name}', **kw))
            return f'{b}/{name}'
        x, f = n.input[0], onnx.TensorProto.FLOAT
        shape, gshape = node('Shape', [x], 'shape'), node('Shape', [gx], 'gshape')
        h, w = node('Gather', [shape, i64('i2', 2)], 'h'), node('Gather', [shape, i64('i3', [3])], 'w')  # (), (1,)
        wf = node('Cast', [w], 'wf', to=f)
        last = node('Sub', [wf, f32('one', 1.0)], 'last')
        gx0 = node('Slice', [gx, i64('s0', [0]), i64('s1', [1]), i64('s1', [1])], 'gx0')  # the first shift's
        ix = node('Sub', [node('Mul', [node('Add', [gx0, f32('one', 1.0)], 'gx1'), node('Mul', [wf, f32('half', 0.5)],
                                                                                        'half_w')], 'ixw'),
                          f32('half', 0.5)], 'ix')  # pixel column: ((gx + 1) w - 1) / 2, (B, 1, h, w)
        x0 = node('Floor', [ix], 'x0')
        frac = node('Reshape', [node('Sub', [ix, x0], 'frac'), i64('fracshape', [0, 1, 1, -1])], 'frac_flat')
        col = node('Sub', [x0, f32('j', np.arange(-1, shifts).reshape(1, -1, 1, 1))], 'col')  # (B, S+1, h, w)
        inside = node('Cast', [node('And', [node('GreaterOrEqual', [col, f32('zero', 0.0)], 'ge'),
                                            node('LessOrEqual', [col, last], 'le')], 'in')], 'valid', to=f)
        rows = node('Reshape', [node('Mul', [node('Range', [i64('r0', 0), h, i64('r1', 1)], 'range'), w], 'starts'),
                                i64('rowshape', [1, 1, -1, 1])], 'rows')  # (1, 1, h, 1): flat index of each row's start
        index = node('Add', [node('Cast', [node('Clip', [col, f32('zero', 0.0), last], 'clip')], 'icol',
                                  to=onnx.TensorProto.INT64), rows], 'index')
        flat = node('Reshape', [x, node('Concat', [node('Slice', [shape, i64('s0', [0]), i64('s2', [2])], 'bc'),
                                                   i64('m1', [-1])], 'flatshape', axis=0)], 'flat')  # (B, C, h*w)
        channels = node('Concat', [i64('one_i', [1]), node('Slice', [shape, i64('s1', [1]), i64('s2', [2])], 'c'),
                                   i64('one_i', [1])], 'channels', axis=0)  # (1, C, 1): index shared by the channels
        index = node('Expand', [node('Reshape', [index, node('Concat', [node('Slice', [gshape, i64('s0', [0]),
                                                                                       i64('s1', [1])], 'b'),
                                                                        i64('m2', [1, -1])], 'index_shape', axis=0)],
                                     'iflat'), channels], 'ichan')  # (B, C, (S+1)*h*w)
        gathered = node('Reshape', [node('GatherElements', [flat, index], 'g', axis=2),
                                    i64('split', [0, 0, shifts + 1, -1])], 'gathered')  # (B, C, S+1, h*w)
        columns = node('Mul', [gathered, node('Reshape', [inside, i64('valid_shape', [0, 1, shifts + 1, -1])],
                                              'valid_flat')], 'columns')  # zero outside the image
        left_tap = node('Slice', [columns, i64('s1', [1]), i64('end', [shifts + 1]), i64('ax2', [2])], 'tap0')
        right_tap = node('Slice', [columns, i64('s0', [0]), i64('sn', [shifts]), i64('ax2', [2])], 'tap1')
        blend = node('Add', [node('Mul', [left_tap, node('Sub', [f32('one', 1.0), frac], 'rest')], 'weighted0'),
                             node('Mul', [right_tap, frac], 'weighted1')], 'blend')
        out_shape = node('Concat', [node('Slice', [shape, i64('s0', [0]), i64('s2', [2])], 'bc2'), i64('m1', [-1]), w],
                         'out_shape', axis=0)  # (B, C, S*h, w)
        nodes.append(helper.make_node('Reshape', [blend, out_shape], list(n.output), name=f'{b}/out'))
    del graph.node[:]
    graph.node.extend(nodes)
    return _prune(model)


def _shift_count(gx: str, producer: dict[str, onnx.NodeProto], inits: dict[str, onnx.TensorProto]) -> int:
    """S when the x coordinates ``gx`` (B, S, h, w) come from x - (disparity + s) for S ascending
    consecutive integer shifts s (a constant (1, S, 1, 1) added to the disparity), else 0."""
    todo, seen = [gx], set()
    while todo and len(seen) < 40:  # breadth first: the Sub is a few nodes above gx
        node = producer.get(todo.pop(0))
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        add = producer.get(node.input[1]) if node.op_type == 'Sub' and len(node.input) == 2 else None
        for name in add.input if add is not None and add.op_type == 'Add' else ():
            const = producer.get(name)
            if name in inits:
                s = numpy_helper.to_array(inits[name])
            elif const is not None and const.op_type == 'Constant' and const.attribute[0].name == 'value':
                s = numpy_helper.to_array(const.attribute[0].t)
            else:
                continue
            if s.ndim == 4 and s.shape[::2] == (1, 1) and s.shape[3] == 1 and np.array_equal(
                    s.ravel(), s.ravel()[0] + np.arange(s.size)):
                return int(s.size)
        todo.extend(node.input)
    return 0
