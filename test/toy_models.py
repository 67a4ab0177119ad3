"""Tiny hand-built ONNX models whose outputs are known formulas, with model cards: fixtures for
testing estimators and nodes without torch (needs the ``onnx`` package).

Stereo graph ``<name>.s<k>.onnx`` (inputs ``left``, ``right`` (1, 3, H, W) -> ``disparity``)::

    disparity = k * gain * (left_red - right_red) + ramp * (x + 1)      # x: column, px

Mono graph ``<name>.onnx`` (input ``image`` -> ``depth``, averaged over 2x2 blocks when
``output_scale`` is 0.5)::

    depth = offset + gain * red

Channel values are the network's [0, 1] inputs. Dynamic graphs fail unless H and W are multiples
of ``multiple_of`` (like real networks, through a space-to-depth round trip).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from depth_ros.model_card import Graph, ModelCard, sha256_of

OPSET = 17


def _graph(inputs: list[str], nodes: list[Any], output: str, size: tuple[int, int] | None, path: Path,
           output_scale: float) -> Graph:
    """Save a float32 NCHW graph (batch 1, 3 channels in, 1 out) and describe it (1 stage)."""
    import onnx
    from onnx import TensorProto, helper

    if size is None:
        (h, w), (oh, ow) = ('height', 'width'), ('out_height', 'out_width')
    else:
        (h, w), (oh, ow) = size, (int(size[0] * output_scale), int(size[1] * output_scale))
    graph = helper.make_graph(
        nodes, path.stem,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, h, w]) for n in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, 1, oh, ow])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Graph(stages=1, file=path.name, sha256=sha256_of(path))


def _const(name: str, value: float | list[int], integer: bool = False) -> Any:
    from onnx import TensorProto, helper

    values = value if isinstance(value, list) else [value]
    kind = TensorProto.INT64 if integer else TensorProto.FLOAT
    return helper.make_node('Constant', [], [name], value=helper.make_tensor(name, kind, [len(values)], values))


def _red(src: str, out: str) -> list[Any]:
    """Nodes slicing channel 0 of ``src`` into ``out`` (1, 1, H, W)."""
    from onnx import helper

    return [_const(f'{out}_s', [0], True), _const(f'{out}_e', [1], True), _const(f'{out}_a', [1], True),
            helper.make_node('Slice', [src, f'{out}_s', f'{out}_e', f'{out}_a'], [out])]


def _require_multiple(src: str, out: str, multiple_of: int) -> list[Any]:
    """Identity that ONNX Runtime refuses to run unless H and W are multiples of ``multiple_of``."""
    from onnx import helper

    if multiple_of <= 1:
        return [helper.make_node('Identity', [src], [out])]
    return [helper.make_node('SpaceToDepth', [src], [f'{out}_s2d'], blocksize=multiple_of),
            helper.make_node('DepthToSpace', [f'{out}_s2d'], [out], blocksize=multiple_of)]


def _card(directory: Path, name: str, kind: str, graphs: list[Graph], size: tuple[int, int], dynamic: bool,
          multiple_of: int, output: dict[str, Any], **fields: Any) -> Path:
    card = ModelCard(name=name, arch=f'toy_{kind}', kind=kind, graphs=graphs,
                     input={'layout': 'NCHW', 'color': 'rgb', 'range': [0, 1], 'size': list(size),
                            'dynamic': dynamic, 'multiple_of': multiple_of if dynamic else 1},
                     output=output, directory=directory, **fields)
    return card.save(directory / f'{name}.json')


def write_stereo_toy(directory: str | Path, name: str = 'toy_stereo', *, stages: tuple[int, ...] = (1, 2),
                     size: tuple[int, int] = (32, 64), dynamic: bool = True, multiple_of: int = 16,
                     gain: float = 255.0, ramp: float = 0.0, max_disparity: float | None = None,
                     trained: bool = False) -> Path:
    """Write a toy stereo model (graphs + card) into ``directory``; returns the card path.
    ``size`` (H, W) is the card's input size (the only one accepted unless ``dynamic``)."""
    from onnx import helper

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    graphs = []
    for k in stages:
        nodes = _red('left', 'lr') + _red('right', 'rr') + [
            helper.make_node('Sub', ['lr', 'rr'], ['diff']), _const('gain', k * gain),
            helper.make_node('Mul', ['diff', 'gain'], ['value']),
            _const('zero', 0.0), _const('one', 1.0), _const('ramp', ramp), _const('axis', [3], True),
            helper.make_node('Mul', ['lr', 'zero'], ['zeros']), helper.make_node('Add', ['zeros', 'one'], ['ones']),
            helper.make_node('CumSum', ['ones', 'axis'], ['column']),
            helper.make_node('Mul', ['column', 'ramp'], ['ramp_term']),
            helper.make_node('Add', ['value', 'ramp_term'], ['sum'])]
        nodes += _require_multiple('sum', 'disparity', multiple_of if dynamic else 1)
        graph = _graph(['left', 'right'], nodes, 'disparity', None if dynamic else size,
                       directory / f'{name}.s{k}.onnx', 1.0)
        graphs.append(Graph(stages=k, file=graph.file, sha256=graph.sha256))
    output: dict[str, Any] = {'quantity': 'disparity', 'unit': 'px', 'scale': 1.0}
    if max_disparity is not None:
        output['max_disparity'] = float(max_disparity)
    return _card(directory, name, 'stereo', graphs, size, dynamic, multiple_of, output, trained=trained)


def write_mono_toy(directory: str | Path, name: str = 'toy_mono', *, size: tuple[int, int] = (24, 32),
                   dynamic: bool = True, multiple_of: int = 8, output_scale: float = 1.0, offset: float = 1.0,
                   gain: float = 9.0, f_canonical: float | None = None, trained: bool = False) -> Path:
    """Write a toy mono model (graph + card) into ``directory``; returns the card path.
    ``output_scale`` is 1.0 or 0.5 (2x2 average pooling)."""
    from onnx import helper

    if output_scale not in (1.0, 0.5):
        raise ValueError(f'output_scale must be 1.0 or 0.5, not {output_scale}')
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    nodes = _red('image', 'red0') + _require_multiple('red0', 'red', multiple_of if dynamic else 1) + [
        _const('gain', gain), _const('offset', offset), helper.make_node('Mul', ['red', 'gain'], ['scaled'])]
    if output_scale == 0.5:
        nodes += [helper.make_node('Add', ['scaled', 'offset'], ['full']),
                  helper.make_node('AveragePool', ['full'], ['depth'], kernel_shape=[2, 2], strides=[2, 2])]
    else:
        nodes.append(helper.make_node('Add', ['scaled', 'offset'], ['depth']))
    graph = _graph(['image'], nodes, 'depth', None if dynamic else size, directory / f'{name}.onnx', output_scale)
    output = {'quantity': 'depth', 'unit': 'm', 'scale': output_scale}
    return _card(directory, name, 'mono', [graph], size, dynamic, multiple_of, output, f_canonical=f_canonical,
                 trained=trained)
