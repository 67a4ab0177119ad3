"""depth-ros-demo: the one-command demo. Runs camera_source (a synthetic scene with exact ground
truth), stereo_depth_node and, when a mono model is available, mono_depth_node in one process on
a MultiThreadedExecutor, listens to their outputs like a user would, then prints rates,
end-to-end latency and accuracy, and writes a picture (depth maps, colour scale, point clouds).

Needs only the PyPI packages (rclpy + message wheels, numpy, OpenCV, ONNX Runtime): no
message_filters, sensor_msgs_py, launch or torch. Outputs are remapped to ``stereo/...`` and
``mono/...`` (depth/image, depth/camera_info, points, disparity).

Exit status: 0 on success, 1 if a node published nothing, 2 for bad options or a model that
cannot be loaded.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from . import geometry, msgs, viz
from .model_card import ModelCardError, load_card, model_dirs
from .nodes.diagnostics import status_values
from .sources import SourceError
from .training.metrics import depth_metrics, stereo_metrics  # numpy only

LOOP_FRAMES = 16    # synthetic frames rendered before the run (played back and forth)
WARMUP = 2          # first outputs of each node left out of the latency statistics
KEEP = 15           # frames kept per node for accuracy and the picture (clouds: CLOUDS)
CLOUDS = 4          # newest clouds kept per node (4.9 MB each at 640x480 with rgb)
OUTPUTS = ('depth/image', 'depth/camera_info', 'points', 'disparity')
Stamp = tuple[int, int]


def stamp_of(msg: Any) -> Stamp:
    """(sec, nanosec) of a message's header stamp."""
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def stamp_seconds(stamp: Stamp) -> float:
    """A stamp in seconds."""
    return stamp[0] + 1e-9 * stamp[1]


def shipped_models(kind: str) -> list[str]:
    """Card paths of the trained models of ``kind`` ('stereo' or 'mono') shipped in models/, by name."""
    cards = []
    for d in model_dirs():
        for path in sorted(d.glob('*.json')):
            try:
                card = load_card(path)
            except ModelCardError:
                continue
            if card.kind == kind and card.trained:
                cards.append(str(path))
    return cards


@dataclass
class Output:
    """What the monitor recorded of one depth node."""
    label: str
    prefix: str
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    received: list[float] = field(default_factory=list)  # monotonic times of depth images
    frames: OrderedDict = field(default_factory=OrderedDict)  # stamp -> {'depth': Image, 'disparity': ...}
    clouds: OrderedDict = field(default_factory=OrderedDict)  # stamp -> PointCloud2


class Monitor(Node):
    """Subscribes to the source's left image and ground truth and to every node's outputs
    (reliable QoS, as RViz); records receipt - stamp latencies and keeps the last frames."""

    def __init__(self, context: Context, outputs: list[Output]) -> None:
        super().__init__('depth_ros_demo', context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.inputs: list[float] = []
        self.left: OrderedDict[Stamp, Image] = OrderedDict()
        self.truth: OrderedDict[Stamp, dict[str, Image]] = OrderedDict()
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.outputs = outputs
        self.create_subscription(Image, 'left/image_rect', self._on_left, qos)
        for name in ('depth', 'disparity'):
            self.create_subscription(Image, f'ground_truth/{name}', lambda m, n=name: self._on_truth(n, m), qos)
        for out in outputs:
            self.create_subscription(Image, f'{out.prefix}/depth/image', lambda m, o=out: self._on_output(o, 'depth', m), qos)
            self.create_subscription(PointCloud2, f'{out.prefix}/points', lambda m, o=out: self._on_output(o, 'points', m), qos)
            if out.prefix == 'stereo':
                self.create_subscription(DisparityImage, 'stereo/disparity',
                                         lambda m, o=out: self._on_output(o, 'disparity', m), qos)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    @staticmethod
    def _keep(store: OrderedDict, key: Any, value: Any, size: int = KEEP) -> None:
        store[key] = value
        while len(store) > size:
            store.popitem(last=False)

    def _on_left(self, msg: Image) -> None:
        self.inputs.append(time.monotonic())
        self._keep(self.left, stamp_of(msg), msg)

    def _on_truth(self, name: str, msg: Image) -> None:
        entry = self.truth.get(stamp_of(msg)) or {}
        entry[name] = msg
        self._keep(self.truth, stamp_of(msg), entry, 2 * KEEP)

    def _on_output(self, out: Output, kind: str, msg: Any) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        stamp = stamp_of(msg)
        out.latency[kind].append(now - stamp_seconds(stamp))
        if kind == 'depth':
            out.received.append(time.monotonic())
        if kind == 'points':
            self._keep(out.clouds, stamp, msg, CLOUDS)
            return
        entry = out.frames.get(stamp) or {}
        entry[kind] = msg
        self._keep(out.frames, stamp, entry)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics.update(status_values(msg))


# ----------------------------------------------------------------------------- evaluation
def rate(times: list[float]) -> float:
    """Mean rate (Hz) of events at monotonic ``times``."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def percentiles_ms(values: list[float]) -> str:
    """'median / p90' in ms of latencies in s, the warm-up left out."""
    v = values[WARMUP:] if len(values) > WARMUP + 2 else values
    return f'{1e3 * np.median(v):6.1f} / {1e3 * np.percentile(v, 90):6.1f}' if v else '   n/a'


def accuracy(out: Output, truth: OrderedDict) -> dict[str, float]:
    """Mean per-frame metrics over the kept frames that have ground truth: AbsRel, RMSE (m),
    delta<1.25 of depth, density (share of ground-truth pixels with a depth), bad-3 of the
    disparity (stereo); errors on pixels valid in both prediction and ground truth."""
    rows = []
    for stamp, entry in out.frames.items():
        gt = truth.get(stamp)
        if gt is None or 'depth' not in entry or 'depth' not in gt:
            continue
        pred, gt_depth = msgs.image_to_array(entry['depth']), msgs.image_to_array(gt['depth'])
        if pred.dtype != np.float32 or pred.shape != gt_depth.shape:
            continue  # 16UC1 output or decimated: not compared
        m = depth_metrics(pred, gt_depth)
        row = {'absrel': m['absrel'], 'rmse': m['rmse'], 'delta1': m['delta1'],
               'density': float(np.mean(np.isfinite(pred)[np.isfinite(gt_depth)]))}
        if 'disparity' in entry and 'disparity' in gt:
            d = entry['disparity']
            disp = msgs.image_to_array(d.image)
            row['bad3'] = stereo_metrics(disp, msgs.image_to_array(gt['disparity']),
                                         pred_valid=disp >= d.min_disparity)['bad3_pred']
        rows.append(row)
    keys = {k for r in rows for k in r}
    return {k: float(np.nanmean([r[k] for r in rows if k in r])) for k in keys} | {'frames': len(rows)}


def picture(outputs: list[Output], monitor: Monitor, k: np.ndarray, title: str,
            metrics: dict[str, dict[str, float]]) -> np.ndarray | None:
    """Figure of the newest frame every node delivered: left image, ground truth and each node's
    depth (one colour scale, invalid black), the colour bar, and point-cloud previews."""
    common = [s for s in monitor.left if s in monitor.truth and 'depth' in monitor.truth[s]
              and all('depth' in o.frames.get(s, {}) for o in outputs)]
    if not common:
        return None
    stamp = max(common, key=lambda s: (all(s in o.clouds for o in outputs), s))  # with clouds if possible
    gt = msgs.image_to_array(monitor.truth[stamp]['depth'])
    lo, hi = viz.depth_range(gt)
    left = msgs.image_to_rgb8(monitor.left[stamp])
    panels = [('left image', left), ('ground truth depth', viz.colorize_depth(gt, lo, hi))]
    gt_points = geometry.backproject(gt, k)
    view = viz.cloud_view(gt_points)  # one viewpoint for every cloud
    clouds = [('ground truth cloud (from above left)', viz.preview_cloud(gt_points, left, view))]
    for out in outputs:
        entry = out.frames[stamp]
        m = metrics[out.prefix]
        scores = f'AbsRel {m["absrel"]:.3f}' if 'absrel' in m else ''
        panels.append((f'{out.label}  {scores}', viz.colorize_depth(msgs.image_to_array(entry['depth']), lo, hi)))
        if stamp in out.clouds:
            xyz, rgb = msgs.cloud_arrays(out.clouds[stamp])
            if rgb is None:
                rgb = viz.colorize_depth(xyz[..., 2], lo, hi)
            clouds.append((f'{out.prefix} cloud', viz.preview_cloud(xyz, rgb, view)))
    columns = max(len(panels), len(clouds) + 1)
    panels += [('', np.zeros((2, 2, 3), np.uint8))] * (columns - len(panels))
    clouds.append(('depth colour scale', viz.color_bar(240, lo, hi)))
    return viz.tile(panels + clouds, columns, title=title)


def report(args: argparse.Namespace, monitor: Monitor, outputs: list[Output], nodes: dict[str, Any],
           metrics: dict[str, dict[str, float]]) -> str:
    """The printed summary (a small markdown table)."""
    lines = [f'depth_ros demo: synthetic {args.width}x{args.height} stereo scene, {len(monitor.inputs)} frames '
             f'in, input rate {rate(monitor.inputs):.1f} Hz (asked {args.rate:g} Hz)', '',
             '| node | model (backend) | output Hz | depth latency ms (median / p90) | cloud latency ms '
             '(median / p90) | AbsRel | RMSE m | δ<1.25 | bad-3 | valid |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for out in outputs:
        est = nodes[out.prefix].estimator
        trained = '' if est is None or est.trained else ' **untrained, for tests**'
        model = 'none' if est is None else f'{est.name} ({est.backend}){trained}'
        m = metrics[out.prefix]

        def fmt(key: str, spec: str) -> str:
            return format(m[key], spec) if key in m and np.isfinite(m[key]) else 'n/a'

        lines.append(f'| {out.label} | {model} | {rate(out.received):.1f} | {percentiles_ms(out.latency["depth"])} | '
                     f'{percentiles_ms(out.latency["points"])} | {fmt("absrel", ".3f")} | {fmt("rmse", ".3f")} | '
                     f'{fmt("delta1", ".1%")} | {fmt("bad3", ".1%")} | {fmt("density", ".0%")} |')
    lines += ['', f'Latency: stamp of the published input -> receipt of depth/image or points by a subscriber in '
              f'the same process (first {WARMUP} outputs left out). Accuracy: mean over up to {KEEP} frames '
              f'against the exact ground truth; errors on pixels valid in both; valid = share of ground-truth '
              f'pixels with a depth.']
    for out in outputs:
        diag = monitor.diagnostics.get(nodes[out.prefix].get_name(), {})
        if diag:
            lines.append(f'{out.label}: node overhead median {diag.get("node overhead median (ms)", "n/a")} ms, '
                         f'dropped frames {diag.get("dropped frames", "n/a")}, errors {diag.get("errors", "n/a")}')
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='depth-ros-demo', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--stereo-model', default='opencv_sgbm', help="stereo model: 'opencv_sgbm', 'opencv_bm', a "
                   'shipped model name (models/<name>.json) or a model card / .onnx path')
    p.add_argument('--mono-model', default=None, help='mono model (name or card path); default: a trained mono '
                   'model shipped in models/, else the mono node is skipped')
    p.add_argument('--backend', default='auto', choices=('auto', 'onnxruntime', 'torch'),
                   help='inference backend of network models')
    p.add_argument('--seconds', type=float, default=None, help='run time (default 10 s; 120 s cap with --frames)')
    p.add_argument('--frames', type=int, default=None, help='stop once every node published this many depth images')
    p.add_argument('--rate', type=float, default=10.0, help='camera rate (Hz)')
    p.add_argument('--width', type=int, default=640, help='image width (px)')
    p.add_argument('--height', type=int, default=480, help='image height (px)')
    p.add_argument('--seed', type=int, default=3, help='synthetic scene (3: several objects at 1-8 m)')
    p.add_argument('--out', default='depth_ros_demo.png', help='picture to write')
    args = p.parse_args(argv)
    problems = [f'{name} must be {rule}' for name, bad, rule in (
        ('--seconds', args.seconds is not None and not args.seconds > 0, '> 0'),
        ('--frames', args.frames is not None and args.frames < 1, '>= 1'),
        ('--rate', not 0 < args.rate <= 500, 'in (0, 500] Hz'),
        ('--width/--height', not (32 <= args.width <= 4096 and 32 <= args.height <= 4096), 'in 32-4096 px'),
        ('--out', not Path(args.out).parent.is_dir() and str(Path(args.out).parent) != '', 'in an existing folder'))
        if bad]
    if problems:
        p.error('; '.join(problems))
    if args.seconds is None:
        args.seconds = 10.0 if args.frames is None else 120.0
    return args


def check_models(args: argparse.Namespace) -> str | None:
    """Load the requested models once so a bad name fails here with a clear message; returns
    the mono model to run (None: skipped)."""
    from .inference import DepthEstimator, EstimatorError, StereoEstimator

    stereo_backend = 'auto' if args.stereo_model.startswith('opencv_') else args.backend
    mono = args.mono_model or next(iter(shipped_models('mono')), None)
    try:
        StereoEstimator(args.stereo_model, backend=stereo_backend)
        if mono is not None:
            DepthEstimator(mono, backend=args.backend)
    except (ModelCardError, EstimatorError, ValueError, OSError, ImportError, RuntimeError) as e:
        raise SystemExit(f'depth-ros-demo: cannot load a model: {e}') from None
    if mono is None:
        print('mono_depth_node: SKIPPED - no trained mono model is shipped in models/; give one with --mono-model')
    return mono


def stop_executor(executor: MultiThreadedExecutor, nodes: list[Node]) -> None:
    """Remove ``nodes``, let the executor's running callbacks finish, then shut it down.

    rclpy's MultiThreadedExecutor.shutdown() destroys its guard condition before its threads
    finish, and a callback finishing afterwards fails on it; the callbacks here take
    milliseconds (estimation runs in the depth nodes' own worker threads), so a short drain
    avoids that."""
    for node in nodes:
        executor.remove_node(node)
    time.sleep(0.3)
    executor.shutdown()


def run(args: argparse.Namespace, context: Context) -> int:
    from .nodes.camera_source import CameraSource
    from .nodes.mono import MonoDepthNode
    from .nodes.stereo import StereoDepthNode

    mono_model = check_models(args)
    source = CameraSource(context=context, parameter_overrides=[
        Parameter('rate', value=float(args.rate)), Parameter('width', value=args.width),
        Parameter('height', value=args.height), Parameter('seed', value=args.seed),
        Parameter('frames', value=LOOP_FRAMES)])
    while not source.source.wait(2.0):
        print(f'rendering the synthetic scene: {source.source.rendered}/{LOOP_FRAMES} frames', flush=True)
    stereo_backend = 'auto' if args.stereo_model.startswith('opencv_') else args.backend
    kinds = [('stereo', StereoDepthNode, args.stereo_model, stereo_backend)]
    if mono_model is not None:
        kinds.append(('mono', MonoDepthNode, mono_model, args.backend))
    nodes: dict[str, Any] = {}
    for prefix, cls, model, backend in kinds:
        remaps = [a for t in OUTPUTS for a in ('-r', f'{t}:={prefix}/{t}')]
        nodes[prefix] = cls(context=context, cli_args=['--ros-args', *remaps], parameter_overrides=[
            Parameter('model', value=str(model)), Parameter('backend', value=backend)])
    outputs = []
    for prefix, node in nodes.items():
        est = node.estimator
        untrained = '' if est.trained else ' (untrained, for tests)'
        outputs.append(Output(f'{prefix}: {est.name}{untrained}', prefix))
    monitor = Monitor(context, outputs)
    executor = MultiThreadedExecutor(context=context)
    for node in (source, *nodes.values(), monitor):
        executor.add_node(node)
    print(f'running {", ".join(n.get_name() for n in nodes.values())} on a {args.width}x{args.height} synthetic '
          f'stereo camera at {args.rate:g} Hz for {args.seconds:g} s ...', flush=True)
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
            if args.frames and all(len(o.received) >= args.frames for o in outputs):
                break
    except KeyboardInterrupt:
        print('interrupted: reporting what arrived so far')
    finally:
        source.timer.cancel()
        stop_executor(executor, [source, *nodes.values(), monitor])
    metrics = {o.prefix: accuracy(o, monitor.truth) for o in outputs}
    print(report(args, monitor, outputs, nodes, metrics))
    status = 0
    if not monitor.inputs:
        print('depth-ros-demo: ERROR: no image arrived from camera_source', file=sys.stderr)
        status = 1
    for out in outputs:
        if not out.received:
            problem = nodes[out.prefix].errors.latest(1e9)
            print(f'depth-ros-demo: ERROR: {nodes[out.prefix].get_name()} published no depth in {args.seconds:g} s'
                  + (f'; last problem: {problem.message}' if problem else ''), file=sys.stderr)
            status = 1
    title = (f'depth_ros demo - synthetic {args.width}x{args.height} scene (seed {args.seed}), '
             f'{", ".join(o.label for o in outputs)}')
    figure = picture(outputs, monitor, source.source.camera.p[:, :3], title, metrics)
    if figure is not None:
        print(f'picture: {viz.write_image(args.out, figure)}')
    else:
        print('no picture: no frame reached every node', file=sys.stderr)
    for node in (monitor, *nodes.values(), source):
        node.destroy_node()
    return status


def main(argv: list[str] | None = None) -> None:
    """Console entry point ``depth-ros-demo``."""
    args = parse_args(argv)
    context = Context()
    rclpy.init(context=context)
    try:
        status = run(args, context)
    except SourceError as e:
        status = f'depth-ros-demo: {e}'
    except KeyboardInterrupt:
        status = 130
    finally:
        rclpy.try_shutdown(context=context)
    sys.exit(status)


if __name__ == '__main__':
    main()
