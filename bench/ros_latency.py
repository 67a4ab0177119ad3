"""End-to-end latency of the depth nodes over ROS 2, against the bare estimator call and the
transport floor, in the process layout of a user: camera_source and a subscriber (this
process), the node under test in its own process.

For each case (stereo SGBM; shipped stereo networks such as AnyNet; the mono node) at
640x480, this measures over >= ``--frames`` frames, at a rate the node sustains (half its
duty cycle, at most 10 Hz):

- e2e: input stamp (camera_source, at publish) -> receipt of depth/image and of points here;
- bare: the estimator call alone on the same frames, in this process, as the node makes it
  (stereo networks fused with SGBM, the node's default; the confidence map included);
- floor: the same path through a trivial echo node (own process) that republishes a 32FC1
  image and an xyz+rgb cloud of the output's size for each input set (no computation);
- overhead = e2e - (bare + floor), per output; the target is <= 3 ms.

Without a shipped model of a kind (and with torch installed) an untrained one is exported to a
temporary folder: its timing is that of the trained network (same graph), its depth is not.

    python bench/ros_latency.py [--frames 50] [--out latency.md]
    python bench/ros_latency.py --echo stereo|mono      (the echo node; started by the bench)
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depth_ros import msgs
from depth_ros.demo import shipped_models, stop_executor
from depth_ros.launch_common import FASTDDS_TRANSPORTS
from depth_ros.demo_monitor import stamp_of, stamp_seconds
from depth_ros.model_card import load_card
from depth_ros.nodes.camera_source import CameraSource
from depth_ros.nodes.diagnostics import status_values

WARMUP = 5
INPUTS = {'stereo': ['left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info'],
          'mono': ['image', 'camera_info']}


# ----------------------------------------------------------------------------- echo node
class Echo(Node):
    """Republishes, for each complete input set (same stamp), a prebuilt 32FC1 image and an
    xyz+rgb organized cloud of the input's size with the left image's header."""

    def __init__(self, kind: str, width: int, height: int) -> None:
        super().__init__('echo')
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self.depth_pub = self.create_publisher(Image, 'depth/image', qos)
        self.points_pub = self.create_publisher(PointCloud2, 'points', qos)
        self.depth = msgs.array_to_image(np.ones((height, width), np.float32), '32FC1')
        self.cloud = msgs.pointcloud2(np.ones((height, width, 4), np.float32), self.depth.header)
        self.images = [t for t in INPUTS[kind] if not t.endswith('info')]
        self.pending: dict[tuple[int, int], dict[str, Image]] = defaultdict(dict)
        for topic in INPUTS[kind]:
            typ = CameraInfo if topic.endswith('info') else Image
            self.create_subscription(typ, topic, lambda m, t=topic: self.on_input(t, m), qos_profile_sensor_data)

    def on_input(self, topic: str, msg: Any) -> None:
        if topic not in self.images:
            return
        stamp = stamp_of(msg)
        entry = self.pending[stamp]
        entry[topic] = msg
        if len(entry) < len(self.images):
            return
        del self.pending[stamp]
        for old in [s for s in self.pending if s < stamp]:
            del self.pending[old]
        self.depth.header = self.cloud.header = entry[self.images[0]].header
        self.depth_pub.publish(self.depth)
        self.points_pub.publish(self.cloud)


def run_echo(kind: str, width: int, height: int) -> None:
    rclpy.init()
    node = Echo(kind, width, height)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


# ----------------------------------------------------------------------------- recorder
class Recorder(Node):
    """Latency (s) of depth/image and points: receipt time - header stamp."""

    def __init__(self) -> None:
        super().__init__('latency_recorder')
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.create_subscription(Image, 'depth/image', lambda m: self.on_output('depth', m), qos)
        self.create_subscription(PointCloud2, 'points', lambda m: self.on_output('points', m), qos)
        self.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics, 10)

    def on_output(self, kind: str, msg: Any) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        self.latency[kind].append(now - stamp_seconds(stamp_of(msg)))

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics.update(status_values(msg))

    def reset(self) -> None:
        self.latency.clear()
        self.diagnostics.clear()


# ----------------------------------------------------------------------------- cases
def untrained(arch: str, folder: Path, input_size: tuple[int, int]) -> str | None:
    """Export an untrained ``arch`` for timing (None without torch)."""
    try:
        from depth_ros.nets.export import export_model
    except ImportError:
        return None
    return str(export_model(arch, folder, name=f'{arch}_untrained', input_size=input_size))


def bare_times(kind: str, model: str, frames: list[Any], fx: float, calls: int) -> list[float]:
    """Seconds per estimator call on the frames (after one warm-up call), as the node makes it:
    stereo networks fused with SGBM (the node's default) and the confidence map after each call."""
    from depth_ros.inference import DepthEstimator, StereoEstimator
    from depth_ros.nodes.stereo import OPENCV

    if kind == 'stereo':
        est = StereoEstimator(model, fusion='none' if model in OPENCV else 'sgbm')
        call = lambda f: (est(f.left, f.right), est.confidence(left_right=False))  # noqa: E731
    else:
        est = DepthEstimator(model)
        call = lambda f: est(f.left, fx=fx, out_size=(f.left.shape[1], f.left.shape[0]))  # noqa: E731
    call(frames[0])
    times = []
    for i in range(calls):
        t0 = time.perf_counter()
        call(frames[i % len(frames)])
        times.append(time.perf_counter() - t0)
    return times


def measure(source: CameraSource, recorder: Recorder, command: list[str], rate: float,
            frames: int) -> tuple[dict[str, list[float]], float]:
    """Start ``command`` (a node process), publish at ``rate`` until ``frames`` outputs of each
    kind arrived after the warm-up (or 4x the time that takes), stop it. Returns the latencies
    (s) per output and the share of published frames whose depth arrived."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while recorder.count_publishers('depth/image') == 0 or recorder.count_publishers('points') == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f'{command[2:4]} did not start: {proc.stderr.read()[-2000:]}')
            time.sleep(0.1)
        time.sleep(1.5)  # lazy nodes subscribe their inputs within 0.5 s of a subscriber
        recorder.reset()
        published = source.published
        source.set_parameters([Parameter('rate', value=float(rate))])
        deadline = time.monotonic() + max(60.0, 4 * (frames + WARMUP) / rate)
        while min(len(recorder.latency['depth']), len(recorder.latency['points'])) < frames + WARMUP:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        source.timer.cancel()
        time.sleep(1.0)
        delivered = len(recorder.latency['depth']) / max(source.published - published, 1)
        return {k: v[WARMUP:] for k, v in recorder.latency.items()}, delivered
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        deadline = time.monotonic() + 10  # until discovery forgets it, so the next case waits for its own
        while recorder.count_publishers('depth/image') and time.monotonic() < deadline:
            time.sleep(0.1)


def ms(values: list[float], q: float) -> float:
    return 1e3 * float(np.percentile(values, q)) if values else float('nan')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--frames', type=int, default=50, help='measured frames per case (after warm-up)')
    p.add_argument('--width', type=int, default=640)
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--out', help='also write the markdown table to this file')
    p.add_argument('--domain', type=int, default=random.randint(215, 232),
                   help='ROS_DOMAIN_ID for the bench and its node processes (default: a random one of 215-232, '
                        'so other ROS traffic on this machine cannot mix in)')
    p.add_argument('--echo', choices=tuple(INPUTS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.echo:
        return run_echo(args.echo, args.width, args.height)
    os.environ['ROS_DOMAIN_ID'] = str(args.domain)  # inherited by the node processes
    variable, transports = FASTDDS_TRANSPORTS  # as the launch files start the nodes (large images over UDP
    os.environ.setdefault(variable, transports)  # with the default socket buffers lose fragments)

    with tempfile.TemporaryDirectory(prefix='depth_ros_bench_') as tmp:
        table = run_cases(args, Path(tmp))
    print(table)
    if args.out:
        Path(args.out).write_text(table + '\n')


def run_cases(args: argparse.Namespace, tmp: Path) -> str:
    """Measure every case; the markdown table."""
    cases: list[tuple[str, str, str]] = [('stereo', 'opencv_sgbm', 'opencv_sgbm')]
    for kind, arch, size in (('stereo', 'anynet', (args.height, args.width)), ('mono', 'fastdepth', (224, 320))):
        for m in shipped_models(kind) or [m for m in [untrained(arch, tmp, size)] if m]:
            card = load_card(m)
            cases.append((kind, m, f'{card.name}{"" if card.trained else " (untrained weights: timing only)"}'))

    rclpy.init()
    source = CameraSource(parameter_overrides=[Parameter('width', value=args.width),
                                               Parameter('height', value=args.height),
                                               Parameter('frames', value=8), Parameter('rate', value=1.0)])
    source.timer.cancel()
    recorder = Recorder()
    executor = SingleThreadedExecutor()
    for node in (source, recorder):
        executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    source.source.wait()
    frames = [source.source.read() for _ in range(8)]
    fx = float(source.source.camera.p[0, 0])
    floors: dict[str, tuple[dict[str, list[float]], float]] = {}
    rows = []
    try:
        for kind, model, label in cases:
            bare = bare_times(kind, model, frames, fx, max(args.frames, 20))
            rate = float(np.clip(0.5 / np.percentile(bare, 90), 1.0, 10.0))
            if kind not in floors:
                echo = [sys.executable, __file__, '--echo', kind,
                        '--width', str(args.width), '--height', str(args.height)]
                floors[kind] = measure(source, recorder, echo, rate, args.frames)
            node = [sys.executable, '-m', f'depth_ros.nodes.{kind}', '--ros-args', '-p', f'model:={model}']
            e2e, delivered = measure(source, recorder, node, rate, args.frames)
            bare += bare_times(kind, model, frames, fx, max(args.frames, 20))  # after too: load drifts
            diag = recorder.diagnostics.get(f'{kind}_depth_node', {})
            in_node = f'{diag.get("latency median (ms)", "n/a")} / {diag.get("node overhead median (ms)", "n/a")}'
            rows.append((kind, label, rate, bare, e2e, delivered, floors[kind], in_node))
            print(f'{label}: done', file=sys.stderr, flush=True)
    finally:
        stop_executor(executor, [source, recorder])
        source.destroy_node()
        recorder.destroy_node()
        rclpy.try_shutdown()

    transports = os.environ.get('FASTDDS_BUILTIN_TRANSPORTS', 'DEFAULT')
    lines = [f'ROS 2 latency at {args.width}x{args.height} (ms, median / p90), {os.cpu_count()} CPU cores, Fast DDS '
             f'transports {transports}; camera_source + subscriber in one process (SingleThreadedExecutor), the '
             'node and the echo node each in their own process; reliable publishers, the nodes\' own input QoS '
             '(the echo subscribes with the sensor-data profile too). delivered = share of published frames whose '
             'depth arrived; bare call timed in this process just before and after the node ran; in-node = the '
             "node's /diagnostics: input received -> outputs published, and that minus its estimator call.", '',
             '| node | model | rate Hz | frames | delivered (node / echo) | bare call | e2e depth | e2e cloud '
             '| floor depth | floor cloud | overhead depth | overhead cloud | in-node latency / overhead (median) |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for kind, label, rate, bare, e2e, delivered, (floor, floor_delivered), diag in rows:
        cells = [f'{ms(v, 50):.1f} / {ms(v, 90):.1f}' for v in (bare, e2e.get('depth', []), e2e.get('points', []),
                                                                floor.get('depth', []), floor.get('points', []))]
        over = [ms(e2e.get(k, []), 50) - ms(bare, 50) - ms(floor.get(k, []), 50) for k in ('depth', 'points')]
        lines.append(f'| {kind}_depth_node | {label} | {rate:.1f} | {len(e2e.get("depth", []))} | '
                     f'{delivered:.0%} / {floor_delivered:.0%} | ' + ' | '.join(cells)
                     + f' | {over[0]:.1f} | {over[1]:.1f} | {diag} |')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
