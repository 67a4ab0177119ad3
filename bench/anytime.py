"""Anytime AnyNet under a latency budget, over ROS 2: camera_source at 20 Hz 640x480 and
stereo_depth_node in their own processes, this process subscribing to depth/image and
/diagnostics. For each case (all stages, stages:=1, latency_budget_ms values) it reports the
share of input frames answered and the share of frames each stage answered.

    python bench/anytime.py [--model anynet_lite] [--seconds 15] [--budgets 45 80] [--rate 20] [--points]
                            [--out anytime.md]
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image, PointCloud2

from depth_ros.launch_common import FASTDDS_TRANSPORTS
from depth_ros.model_card import DEFAULT_STEREO

STAGE_KEY = 'stage answered (share of frames)'
FUSED_KEY = 'fused with SGBM (share of frames)'


class Watcher(Node):
    """Keeps depth/image (and points) subscribed (the node is lazy) and the stereo node's latest diagnostics."""

    def __init__(self, points: bool) -> None:
        super().__init__('anytime_bench')
        self.values: dict[str, str] = {}
        self.create_subscription(Image, 'depth/image', lambda m: None, 2)
        if points:
            self.create_subscription(PointCloud2, 'points', lambda m: None, 2)
        self.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics, 10)

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith('stereo_depth_node'):
                self.values = {kv.key: kv.value for kv in status.values}


def spin_for(node: Node, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)


def run_case(watcher: Watcher, params: dict[str, object], seconds: float,
             env: dict[str, str]) -> tuple[float, dict[str, str]]:
    """(share of input frames answered over ``seconds`` after warm-up, the last diagnostics)."""
    args = [arg for k, v in params.items() for arg in ('-p', f'{k}:={v}')]
    node = subprocess.Popen([sys.executable, '-m', 'depth_ros.nodes.stereo', '--ros-args', *args], env=env)
    try:
        watcher.values = {}
        spin_for(watcher, 8.0)  # load, subscribe, warm up
        start = dict(watcher.values)
        spin_for(watcher, seconds)
        end = watcher.values
        if not start or not end:
            return float('nan'), {}
        frames_in = int(end['frames in']) - int(start['frames in'])
        frames_out = int(end['frames out']) - int(start['frames out'])
        return frames_out / max(frames_in, 1), end
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='', help="the node's model parameter (default: the node's default)")
    parser.add_argument('--seconds', type=float, default=15.0)
    parser.add_argument('--rate', type=float, default=20.0)
    parser.add_argument('--budgets', type=float, nargs='+', default=[45.0, 80.0])
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--points', action='store_true', help='also subscribe to points (depth + cloud)')
    parser.add_argument('--fusion', default='sgbm', choices=('sgbm', 'none'),
                        help="the node's fusion parameter (default: the node's default, sgbm)")
    parser.add_argument('--out', default='')
    args = parser.parse_args()
    variable, transports = FASTDDS_TRANSPORTS  # as the launch files start the camera and the node
    env = {variable: transports, **os.environ, 'ROS_DOMAIN_ID': str(random.randint(150, 199))}
    os.environ['ROS_DOMAIN_ID'] = env['ROS_DOMAIN_ID']
    source = subprocess.Popen([sys.executable, '-m', 'depth_ros.nodes.camera_source', '--ros-args',
                               '-p', f'rate:={args.rate}', '-p', 'frames:=5'], env=env)
    rclpy.init()
    watcher = Watcher(args.points)
    base = {'threads': args.threads, 'input_reliability': 'reliable',  # best effort loses large images
            'fusion': args.fusion, **({'model': args.model} if args.model else {})}
    cases = [('all 4 stages', {}), ('stages:=1', {'stages': 1})]
    cases += [(f'latency_budget_ms:={b:g}', {'latency_budget_ms': b}) for b in args.budgets]
    model = args.model or DEFAULT_STEREO
    lines = [f'camera_source {args.rate:g} Hz 640x480 -> stereo_depth_node ({model}, fusion {args.fusion}), '
             f'{args.seconds:g} s each:', '', '| case | input rate (Hz) | frames answered | latency median (ms) | '
             'node overhead median (ms) | stage answered (share of frames) | fused with SGBM |',
             '|---|---|---|---|---|---|---|']
    try:
        for label, params in cases:
            share, v = run_case(watcher, {**base, **params}, args.seconds, env)
            cells = [v.get(k, '') for k in ('input rate (Hz)',)] + [f'{100 * share:.0f} %'] + [
                v.get(k, '') for k in ('latency median (ms)', 'node overhead median (ms)', STAGE_KEY, FUSED_KEY)]
            lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
            print(lines[-1], flush=True)
    finally:
        source.send_signal(signal.SIGINT)
        source.wait(10)
        watcher.destroy_node()
        rclpy.shutdown()
    text = '\n'.join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + '\n')


if __name__ == '__main__':
    main()
