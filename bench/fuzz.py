"""Long fuzz run against a depth node in its own process (issue 12), with its memory tracked.

    python bench/fuzz.py --node stereo --tries 25            # ~300 tries over every class
    python bench/fuzz.py --node stereo --huge --reloads 80   # + memory after a huge pair, reloads

Every try publishes one bad input set of a class of ``test/fuzz_client.py`` and then good frames
until one is answered on depth/image (``--timeout`` s). The node's RSS (VmRSS) is sampled after
every class; ``--huge`` sends one 4097x4097 pair (with max_input_pixels raised to take it) and
then serves ``--after`` good frames; ``--reloads`` switches the model back and forth, and
``--scale`` sets input_scale 2.0 and back (stereo). At the end the node gets SIGINT and must exit
0 with nothing but INFO lines. Prints a summary table; exits 1 if a try was unanswered or the
shutdown was not clean.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from depth_ros.model_card import DEFAULT_MONO, DEFAULT_STEREO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'test'))
from fuzz_client import CLASSES, FuzzClient  # noqa: E402

NODES = {'stereo': ('depth_ros.nodes.stereo', 'stereo_depth_node'), 'mono': ('depth_ros.nodes.mono', 'mono_depth_node')}


def rss_mb(pid: int) -> float:
    """Resident set size of a process (MB)."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024.0
    return float('nan')


def set_params(client: AsyncParameterClient, timeout: float = 30.0, **values: object) -> bool:
    """Set parameters of the node; True if all were accepted."""
    future = client.set_parameters([Parameter(k, value=v) for k, v in values.items()])
    end = time.monotonic() + timeout
    while not future.done() and time.monotonic() < end:
        time.sleep(0.01)
    return future.done() and all(r.successful for r in future.result().results)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--node', choices=tuple(NODES), default='stereo')
    ap.add_argument('--model', default='', help='model parameter (default: the node default)')
    ap.add_argument('--size', default='320x240', help='good frame size WxH')
    ap.add_argument('--tries', type=int, default=25, help='tries per class')
    ap.add_argument('--timeout', type=float, default=5.0, help='s to answer the next good frame')
    ap.add_argument('--huge', action='store_true', help='one 4097x4097 input, then --after good frames')
    ap.add_argument('--after', type=int, default=30)
    ap.add_argument('--reloads', type=int, default=0, help='model switches (opencv_sgbm <-> the model)')
    ap.add_argument('--scale', action='store_true', help='input_scale 2.0 and back (stereo)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--verbose', action='store_true', help="print the node's log")
    args = ap.parse_args()
    width, height = map(int, args.size.split('x'))
    module, node_name = NODES[args.node]
    params = ['-p', 'lazy:=false', '-p', 'input_reliability:=reliable']  # a 4097x4097 pair arrives too
    params += ['-p', f'model:={args.model}'] if args.model else []
    env = dict(os.environ, FASTDDS_BUILTIN_TRANSPORTS=os.environ.get('FASTDDS_BUILTIN_TRANSPORTS',
                                                                     'DEFAULT?sockets_size=4MB'))
    os.environ.update(env)
    proc = subprocess.Popen([sys.executable, '-m', module, '--ros-args', *params], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(line.rstrip('\n') for line in proc.stdout), daemon=True).start()
    rclpy.init()
    client = FuzzClient(args.node, width, height, seed=args.seed)
    params_client = AsyncParameterClient(client, node_name)
    executor = MultiThreadedExecutor()
    executor.add_node(client)
    threading.Thread(target=executor.spin, daemon=True).start()
    memory: list[tuple[str, float]] = []
    ok = True
    try:
        end = time.monotonic() + 60
        while not client.connected() and time.monotonic() < end:
            time.sleep(0.1)
        assert client.good_frame_answered(30.0), 'the node never answered a good frame'
        memory.append(('start', rss_mb(proc.pid)))
        result = client.run(args.tries, timeout=args.timeout,
                            after_try=lambda name, i: i == args.tries - 1 and memory.append((name, rss_mb(proc.pid))))
        answered, total = result.total
        print(f'{args.node}: {answered} of {total} tries answered the next good frame')
        for name in CLASSES:
            print(f'  {name:18s} {result.answered[name]:3d} / {result.tries[name]}')
        if result.unanswered:
            print('  unanswered:', ', '.join(result.unanswered))
        ok = answered == total
        if args.huge:
            assert set_params(params_client, max_input_pixels=4097 * 4097)
            big = client.inputs.good(client.next_stamp(), 4097, 4097)
            client.publish_set(big)
            del big
            time.sleep(20.0)  # let it work
            memory.append(('4097x4097 pair', rss_mb(proc.pid)))
            for _ in range(args.after):
                client.good_frame_answered(args.timeout)
            memory.append((f'{args.after} frames later', rss_mb(proc.pid)))
        if args.scale and args.node == 'stereo':
            for scale in (2.0, 1.0):
                assert set_params(params_client, input_scale=scale)
                for _ in range(5):
                    client.good_frame_answered(args.timeout)
            memory.append(('input_scale 2.0 and back', rss_mb(proc.pid)))
        if args.reloads:
            model = args.model or (DEFAULT_STEREO if args.node == 'stereo' else DEFAULT_MONO)
            other = 'opencv_sgbm' if args.node == 'stereo' else 'fastdepth'
            for i in range(args.reloads):
                assert set_params(params_client, model=other if i % 2 == 0 else model)
                client.good_frame_answered(args.timeout)
            memory.append((f'{args.reloads} model reloads', rss_mb(proc.pid)))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = 'hung (killed)'
        executor.shutdown()
        rclpy.try_shutdown()
    print('node RSS (MB):')
    for what, mb in memory:
        print(f'  {what:28s} {mb:8.1f}')
    bad = [line for line in lines if '[INFO]' not in line and '[WARN]' not in line and '[ERROR]' not in line]
    errors = [line for line in lines if '[ERROR]' in line]
    print(f'shutdown: rc {rc}; {len(errors)} ERROR lines; other non-log lines: {bad[:5]}')
    if args.verbose:
        print('\n'.join(lines))
    return 0 if ok and rc == 0 and not bad else 1


if __name__ == '__main__':
    sys.exit(main())
