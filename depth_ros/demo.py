"""depth-ros-demo: the one-command demo. Compares stereo models (every trained stereo network
shipped in models/, then OpenCV SGBM as stereo_image_proc computes it) and a mono network on one
synthetic stereo camera with exact ground truth.

camera_source, one stereo_depth_node per stereo model and, when a mono model is available,
mono_depth_node run in one process on a SingleThreadedExecutor, all fed by the one camera. The
demo listens to their outputs like a user would, then prints one table row per node (rate,
end-to-end latency, accuracy on the same frames) and writes a picture (every node's depth next
to the ground truth on one colour scale, and point clouds).

Needs only the PyPI packages (rclpy + message wheels, numpy, OpenCV, ONNX Runtime): no
message_filters, sensor_msgs_py, launch or torch. Each stereo node is named
``stereo_depth_node_<model>`` and its outputs are remapped to ``stereo/<model>/...``, the mono
node's to ``mono/...`` (depth/image, depth/camera_info, points, disparity).

Exit status: 0 when at least one node published depth (a node short of output is reported in
its row), 1 if none did (or the camera failed), 2 for bad options or a model that cannot be
loaded.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from . import geometry, msgs, viz
from .demo_monitor import KEEP, WARMUP, Monitor, Output, Stamp, accuracy, percentiles_ms, rate
from .model_card import DEFAULT_MONO, DEFAULT_STEREO, ModelCardError, shipped_cards
from .frame_sources import SourceError

LOOP_FRAMES = 16    # synthetic frames rendered before the run (played back and forth)
SHORT = WARMUP + 3  # fewer depth images than this: the node's row is flagged
DRAIN = 10.0        # s to wait after the camera stops for the nodes to finish their last frame
MAX_COLUMNS = 5     # picture columns before it wraps: left image, ground truth, then up to 3 nodes
OUTPUTS = ('depth/image', 'depth/camera_info', 'points', 'disparity')


def shipped_models(kind: str) -> list[str]:
    """Card paths of the trained models of ``kind`` ('stereo' or 'mono') shipped in models/, the
    node's default first, then by name, without those derived from another model's weights
    (``anynet`` is ``anynet_spn8``'s stages 1-3)."""
    default = DEFAULT_STEREO if kind == 'stereo' else DEFAULT_MONO
    cards = sorted((card for card in shipped_cards(kind) if not card.training.get('derived')),
                   key=lambda card: card.name != default)
    return [str(card.directory / f'{card.name}.json') for card in cards]


@dataclass
class Model:
    """A depth node to run: ``kind`` 'stereo' or 'mono', ``model`` as given (name or path),
    its estimator's ``name``, ``backend`` and ``threads`` parameters, and (stereo) ``key``, the
    node's unique suffix and output namespace."""
    kind: str
    model: str
    name: str
    trained: bool
    backend: str
    threads: int = 0
    key: str = ''

    @property
    def prefix(self) -> str:
        """Namespace of the node's outputs."""
        return 'mono' if self.kind == 'mono' else f'stereo/{self.key}'

    def label(self, untrained: str = ' (untrained, for tests)') -> str:
        """Row label, e.g. 'stereo: opencv_sgbm' or 'mono: fastdepth (untrained, for tests)'."""
        return f'{self.kind}: {self.key if self.kind == "stereo" else self.name}' + ('' if self.trained else untrained)


# ----------------------------------------------------------------------------- results
def picture_stamp(outputs: list[Output], monitor: Monitor) -> Stamp | None:
    """The frame for the picture: the one most nodes delivered depth (then clouds) for, newest
    first; after the final drain every node normally has the last published frame."""
    stamps = {s for o in outputs for s in o.frames if monitor.view(s) is not None}
    return max(stamps, key=lambda s: (sum('depth' in o.frames.get(s, {}) for o in outputs),
                                      sum(s in o.clouds for o in outputs), s), default=None)


def picture(outputs: list[Output], monitor: Monitor, k: np.ndarray, title: str,
            metrics: dict[str, dict[str, float]]) -> np.ndarray | None:
    """Figure of one frame: left image and colour bar, ground truth, then each node's depth (one
    colour scale, invalid black) above its point cloud (one viewpoint); None without a frame."""
    stamp = picture_stamp(outputs, monitor)
    if stamp is None:
        return None
    view = monitor.view(stamp)
    gt = msgs.image_to_array(view['depth'])
    lo, hi = viz.depth_range(gt)
    left = msgs.image_to_rgb8(view['left'])
    gt_points = geometry.backproject(gt, k)
    camera = viz.cloud_view(gt_points)  # one viewpoint for every cloud
    columns = [[('left image', left), ('depth colour scale', viz.color_bar(240, lo, hi))],  # start every block
               [('ground truth depth', viz.colorize_depth(gt, lo, hi)),
                ('ground truth cloud (from above left)', viz.preview_cloud(gt_points, left, camera))]]
    for out in outputs:
        entry, m = out.frames.get(stamp, {}), metrics[out.prefix]
        scores = f'  AbsRel {m["absrel"]:.3f}' if np.isfinite(m.get('absrel', np.nan)) else ''
        depth = (viz.colorize_depth(msgs.image_to_array(entry['depth']), lo, hi) if 'depth' in entry
                 else viz.text_panel('no depth for this frame'))
        cloud = viz.text_panel('no cloud for this frame')
        if stamp in out.clouds:
            xyz, rgb = msgs.cloud_arrays(out.clouds[stamp])
            cloud = viz.preview_cloud(xyz, viz.colorize_depth(xyz[..., 2], lo, hi) if rgb is None else rgb, camera)
        columns.append([(out.tag + scores, depth), (f'{out.tag} cloud', cloud)])
    return viz.column_figure(columns, MAX_COLUMNS, lead=2, title=title)


def enough(args: argparse.Namespace) -> int:
    """Depth images a node must deliver not to be flagged: SHORT, or --frames when it asks fewer."""
    return min(SHORT, args.frames) if args.frames else SHORT


def shortfall(out: Output, node: Any, args: argparse.Namespace, nodes: int) -> str | None:
    """Why a node delivered fewer than ``enough(args)`` depth images in the ``args.elapsed`` s the
    demo ran (None if it did not)."""
    n = len(out.received)
    if n >= enough(args):
        return None
    diag = node.diagnostics
    problem = node.errors.latest(1e9)
    why = (f'last problem: {problem.message}' if problem else 'it received no input' if not diag.inputs.count
           else f'too slow here with {nodes} depth nodes sharing {cpu_cores()} CPU cores '
           f'({diag.inputs.count} frames in, {node.worker.dropped} dropped)')
    return (f'{out.label}: {"NO depth image" if n == 0 else f"only {n} depth image(s)"} in {args.elapsed:.1f} s - '
            f'{why}. Try fewer --stereo-models, a longer --seconds or a smaller --width/--height.')


def report(args: argparse.Namespace, monitor: Monitor, outputs: list[Output], nodes: dict[str, Any],
           metrics: dict[str, dict[str, float]]) -> str:
    """The printed summary (a small markdown table, one row per depth node, and notes)."""
    lines = [f'depth_ros demo: synthetic {args.width}x{args.height} stereo scene, {len(monitor.inputs)} frames '
             f'in, input rate {rate(monitor.inputs):.1f} Hz (asked {args.rate:g} Hz)', '',
             '| node | model (backend) | output Hz | depth latency ms (median / p90) | cloud latency ms '
             '(median / p90) | AbsRel | RMSE m | δ<1.25 | bad-3 | valid |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for out in outputs:
        est = nodes[out.prefix].estimator
        trained = '' if est is None or est.trained else ' **untrained, for tests**'
        model = 'none' if est is None else f'{est.name} ({est.backend}){trained}'
        m, n = metrics[out.prefix], len(out.received)
        hz = ('NO OUTPUT' if n == 0 else (f'{rate(out.received):.1f}' if n > 1 else 'n/a')  # one frame: no rate
              + (f' (only {n})' if n < enough(args) else ''))

        def fmt(key: str, spec: str) -> str:
            return format(m[key], spec) if key in m and np.isfinite(m[key]) else 'n/a'

        lines.append(f'| {out.label} | {model} | {hz} | {percentiles_ms(out.latency["depth"])} | '
                     f'{percentiles_ms(out.latency["points"])} | {fmt("absrel", ".3f")} | {fmt("rmse", ".3f")} | '
                     f'{fmt("delta1", ".1%")} | {fmt("bad3", ".1%")} | {fmt("density", ".0%")} |')
    lines += ['', f'Latency: stamp of the published input -> receipt of depth/image or points by a subscriber in '
              f'the same process (first {WARMUP} outputs left out). Accuracy: mean over up to {KEEP} frames '
              f'per node against the exact ground truth; errors on pixels valid in both; valid = share of '
              f'ground-truth pixels with a depth. Nodes compute only the newest frame: the others are dropped.'
              + (f' The {len(outputs)} depth nodes share {cpu_cores()} CPU cores: alone each would run faster.'
                 if len(outputs) > 1 else '')]
    for out in outputs:
        node = nodes[out.prefix]
        diag = {kv.key: kv.value for kv in node.diagnostics.status().values}
        lines.append(f'{out.label}: frames in {diag["frames in"]}, out {diag["frames out"]}, dropped '
                     f'{diag["dropped frames"]}, node overhead median {diag["node overhead median (ms)"]} ms, '
                     f'errors {diag["errors"]}')
    lines += [s for out in outputs if (s := shortfall(out, nodes[out.prefix], args, len(outputs)))]
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- options and models
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except None (its help says what happens then)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='depth-ros-demo', description=__doc__.split('\n\n')[0],
                                formatter_class=HelpFormatter)
    p.add_argument('--stereo-models', '--stereo-model', dest='stereo_models', default=None,
                   help="stereo models to compare, comma-separated: 'opencv_sgbm', 'opencv_bm', shipped model "
                   'names (models/<name>.json) or model card / .onnx paths; default: every trained stereo model '
                   'shipped in models/ (not those derived from another one), then opencv_sgbm')
    p.add_argument('--mono-model', default=None, help='mono model (name or card path); default: a trained mono '
                   'model shipped in models/, else the mono node is skipped')
    p.add_argument('--backend', default='auto', choices=('auto', 'onnxruntime', 'torch'),
                   help='inference backend of network models')
    p.add_argument('--threads', type=int, default=0, help='inference threads per network node (0: the CPU '
                   'cores shared evenly between the network nodes)')
    p.add_argument('--seconds', type=float, default=None, help='run time (default 10 s; 120 s cap with --frames)')
    p.add_argument('--frames', type=int, default=None, help='stop once every node published this many depth images')
    p.add_argument('--rate', type=float, default=10.0, help='camera rate (Hz)')
    p.add_argument('--width', type=int, default=640, help='image width (px)')
    p.add_argument('--height', type=int, default=480, help='image height (px)')
    p.add_argument('--seed', type=int, default=3, help='synthetic scene (3: several objects at 1-8 m)')
    p.add_argument('--out', default='depth_ros_demo.png', help='picture to write')
    args = p.parse_args(argv)
    stereo = [m.strip() for m in args.stereo_models.split(',')] if args.stereo_models is not None else None
    problems = [f'{name} must be {rule}' for name, bad, rule in (
        ('--stereo-models', stereo is not None and not all(stereo), 'a comma-separated list of model names'),
        ('--threads', args.threads < 0, '>= 0'),
        ('--seconds', args.seconds is not None and not args.seconds > 0, '> 0'),
        ('--frames', args.frames is not None and args.frames < 1, '>= 1'),
        ('--rate', not 0 < args.rate <= 500, 'in (0, 500] Hz'),
        ('--width/--height', not (32 <= args.width <= 4096 and 32 <= args.height <= 4096), 'in 32-4096 px'),
        ('--out', not Path(args.out).parent.is_dir() and str(Path(args.out).parent) != '', 'in an existing folder'))
        if bad]
    if problems:
        p.error('; '.join(problems))
    args.stereo_models = stereo if stereo is not None else [*shipped_models('stereo'), 'opencv_sgbm']
    if args.seconds is None:
        args.seconds = 10.0 if args.frames is None else 120.0
    return args


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def check_models(args: argparse.Namespace) -> list[Model]:
    """Load the requested models once so a bad name fails here with a clear message (exit 2);
    returns the nodes to run, each with a unique key and its share of the CPU threads."""
    from .inference import DepthEstimator, EstimatorError, StereoEstimator
    mono = args.mono_model or next(iter(shipped_models('mono')), None)  # the node's default when shipped
    wanted = [('stereo', m) for m in args.stereo_models] + ([('mono', mono)] if mono is not None else [])
    models: list[Model] = []
    for kind, model in wanted:
        backend = 'auto' if kind == 'stereo' and model.startswith('opencv_') else args.backend
        try:
            est = (StereoEstimator if kind == 'stereo' else DepthEstimator)(model, backend=backend)
        except (ModelCardError, EstimatorError, ValueError, OSError, ImportError, RuntimeError) as e:
            print(f'depth-ros-demo: cannot load a model: {e}', file=sys.stderr)
            sys.exit(2)
        models.append(Model(kind, model, est.name, est.trained, backend))
    networks = [m for m in models if not m.model.startswith('opencv_')]
    for m in networks:
        m.threads = args.threads or max(1, cpu_cores() // len(networks))
    taken: set[str] = set()
    for m in (m for m in models if m.kind == 'stereo'):
        base = re.sub(r'\W', '_', m.name)
        base = base if base[:1].isalpha() else f'm_{base}'  # a ROS name token starts with a letter
        m.key = next(k for k in (base if i == 1 else f'{base}_{i}' for i in range(1, len(models) + 2))
                     if k not in taken)
        taken.add(m.key)
    if mono is None:
        print('mono_depth_node: SKIPPED - no trained mono model is shipped in models/; give one with --mono-model')
    return models


# ----------------------------------------------------------------------------- running
def stop_executor(executor: Executor, nodes: list[Node]) -> None:
    """Remove ``nodes``, let the executor's running callbacks finish, then shut it down.

    rclpy's Executor.shutdown() destroys its guard condition at once, and a callback still running
    in another thread (an executor spun there, as ``bench/ros_latency.py`` does) fails on it when
    it finishes; the callbacks here take milliseconds (estimation runs in the depth nodes' own
    worker threads), so a short drain avoids that."""
    for node in nodes:
        executor.remove_node(node)
    time.sleep(0.3)
    executor.shutdown()


def drain(executor: Executor, nodes: list[Any], timeout: float = DRAIN, settle: float = 0.3) -> None:
    """Spin until every depth node has been idle for ``settle`` s (the camera has stopped: each
    finishes the last frame and its outputs arrive), or ``timeout`` s."""
    end, idle_since = time.monotonic() + timeout, None
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
        if not all(n.worker.idle() for n in nodes):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > settle:
            return


def run(args: argparse.Namespace, context: Context) -> int:
    from .nodes.camera_source import CameraSource
    from .nodes.mono import MonoDepthNode
    from .nodes.stereo import StereoDepthNode

    models = check_models(args)
    source = CameraSource(context=context, parameter_overrides=[
        Parameter('rate', value=float(args.rate)), Parameter('width', value=args.width),
        Parameter('height', value=args.height), Parameter('seed', value=args.seed),
        Parameter('frames', value=LOOP_FRAMES)])
    while not source.source.wait(2.0):
        print(f'rendering the synthetic scene: {source.source.rendered}/{LOOP_FRAMES} frames', flush=True)
    nodes: dict[str, Any] = {}
    for m in models:
        remaps = [a for t in OUTPUTS for a in ('-r', f'{t}:={m.prefix}/{t}')]
        if m.kind == 'stereo':
            remaps += ['-r', f'__node:=stereo_depth_node_{m.key}']
        cls = StereoDepthNode if m.kind == 'stereo' else MonoDepthNode
        nodes[m.prefix] = cls(context=context, cli_args=['--ros-args', *remaps], parameter_overrides=[
            Parameter('model', value=m.model), Parameter('backend', value=m.backend),
            Parameter('threads', value=m.threads)])
    outputs = [Output(m.label(), m.label(' (untrained)'), m.prefix, m.kind == 'stereo') for m in models]
    monitor = Monitor(context, outputs, max_views=2 * LOOP_FRAMES)
    executor = SingleThreadedExecutor(context=context)
    for node in (source, *nodes.values(), monitor):
        executor.add_node(node)
    threads = sorted({m.threads for m in models if m.threads})
    print(f'running {", ".join(n.get_name() for n in nodes.values())} on a {args.width}x{args.height} synthetic '
          f'stereo camera at {args.rate:g} Hz for ' + (f'up to {args.seconds:g} s (until every node published '
                                                        f'{args.frames} depth images)' if args.frames
                                                        else f'{args.seconds:g} s')
          + (f' ({"/".join(map(str, threads))} inference thread(s) per network)' if threads else '') + ' ...',
          flush=True)
    start = time.monotonic()
    try:
        while time.monotonic() < start + args.seconds:
            executor.spin_once(timeout_sec=0.1)
            if args.frames and all(len(o.received) >= args.frames for o in outputs):
                break
        args.elapsed = time.monotonic() - start
        monitor.recording = False
        source.timer.cancel()
        drain(executor, list(nodes.values()))  # every node finishes the last frame: one frame for the picture
    except KeyboardInterrupt:
        args.elapsed = time.monotonic() - start
        print('interrupted: reporting what arrived so far')
    finally:
        monitor.recording = False
        source.timer.cancel()
        stop_executor(executor, [source, *nodes.values(), monitor])
    metrics = {o.prefix: accuracy(o, monitor) for o in outputs}
    print(report(args, monitor, outputs, nodes, metrics))
    silent = [nodes[o.prefix] for o in outputs if not o.frames]
    status = 1 if not monitor.inputs or len(silent) == len(outputs) else 0
    if not monitor.inputs:
        print('depth-ros-demo: ERROR: no image arrived from camera_source', file=sys.stderr)
    for node in silent:
        problem = node.errors.latest(1e9)
        print(f'depth-ros-demo: {"ERROR" if status else "WARNING"}: {node.get_name()} published no depth in '
              f'{args.elapsed:.1f} s' + (f'; last problem: {problem.message}' if problem else ''), file=sys.stderr)
    title = (f'depth_ros demo - synthetic {args.width}x{args.height} scene (seed {args.seed}): '
             f'{", ".join(o.tag for o in outputs)}')
    figure = picture(outputs, monitor, source.source.camera.p[:, :3], title, metrics)
    if figure is not None:
        print(f'picture: {viz.write_image(args.out, figure)}')
    else:
        print('no picture: no node delivered a frame', file=sys.stderr)
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
