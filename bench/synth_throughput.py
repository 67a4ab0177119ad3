"""Throughput of the synthetic scene engine.

    python bench/synth_throughput.py                       # torch batches, 256x512, best device
    python bench/synth_throughput.py --kind mono --batch 32 --device cuda
    python bench/synth_throughput.py --numpy               # the ROS demo path: one 640x480 pair

Prints samples/s (torch) or ms per stereo pair (numpy, wall and CPU time).
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def bench_torch(kind: str, height: int, width: int, batch: int, batches: int, device: str) -> None:
    """Time ``next_batch`` of SyntheticStereo / SyntheticMono on ``device``."""
    import torch

    from depth_ros.training.data.synth import SyntheticMono, SyntheticStereo

    source = (SyntheticStereo if kind == 'stereo' else SyntheticMono)(height, width, device, seed=0)

    def sync() -> None:
        if source.device.type == 'cuda':
            torch.cuda.synchronize(source.device)

    source.next_batch(batch)   # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(batches):
        source.next_batch(batch)
    sync()
    elapsed = time.perf_counter() - start
    print(f'{kind} {height}x{width} batch {batch} on {source.device} (torch threads {torch.get_num_threads()}): '
          f'{batch * batches / elapsed:.1f} samples/s, {1000 * elapsed / batches:.1f} ms per batch')


def bench_numpy(frames: int, width: int, height: int) -> None:
    """Time ``render_stereo`` (numpy) for a moving camera in a few random scenes."""
    from depth_ros.synthetic import StereoCamera, pose_matrix, random_scene, render_stereo

    camera = StereoCamera(width=width, height=height, fx=0.8 * width, fy=0.8 * width,
                          cx=(width - 1) / 2, cy=(height - 1) / 2, baseline=0.12)
    scenes = [random_scene(seed) for seed in range(4)]
    render_stereo(scenes[0], camera)   # warm-up
    wall, cpu = [], []
    for i in range(frames):
        pose = pose_matrix(x=0.02 * i, yaw=0.01 * i)
        w0, c0 = time.perf_counter(), time.process_time()
        render_stereo(scenes[i % len(scenes)], camera, pose)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    print(f'numpy render_stereo {width}x{height}: median {1000 * np.median(wall):.1f} ms wall, '
          f'{1000 * np.median(cpu):.1f} ms CPU per stereo pair ({frames} frames)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--kind', choices=('stereo', 'mono'), default='stereo')
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=512)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--batches', type=int, default=5)
    parser.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    parser.add_argument('--numpy', action='store_true', help='time the numpy demo path (640x480 by default)')
    parser.add_argument('--frames', type=int, default=20)
    args = parser.parse_args()
    if args.numpy:
        bench_numpy(args.frames, 640 if args.width == 512 else args.width, 480 if args.height == 256 else args.height)
        return
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    bench_torch(args.kind, args.height, args.width, args.batch, args.batches, device)


if __name__ == '__main__':
    main()
