"""AnyNet against OpenCV's matchers, side by side in one process, through StereoEstimator (what
the stereo node runs): 640x480 rendered pair, shipped trained weights, node default SGBM
parameters, 1 and 2 threads, median of interleaved rounds (every method once per round, so
load from other processes hits all of them alike). No torch needed.

    python bench/stereo_speed.py [--rounds 12] [--threads 1 2] [--model anynet_lite] [--compare CARD] [--out speed.md]

Prints the per-call medians, the issue's three ratios with their goals (AnyNet stage 1 /
StereoBM < 1, AnyNet stages 1-3 / SGBM <= 0.5, AnyNet with SPN / SGBM < 1), the stereo node's
default (AnyNet with SPN fused with SGBM matched at half size) against SGBM, and the load average
around each thread count: on a shared machine, other processes on the second core hide any
two-thread gain (SGBM's about 1.9x on a quiet one).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from collections.abc import Callable

import cv2
import numpy as np

from depth_ros.inference import StereoEstimator
from depth_ros.model_card import DEFAULT_STEREO
from depth_ros.synthetic import StereoCamera, random_scene, render_stereo

W, H, FX, B = 640, 480, 500.0, 0.1
GOALS = (('AnyNet stage 1 / StereoBM', 'anynet s1', 'opencv_bm', '< 1', lambda r: r < 1),
         ('AnyNet stages 1-3 / SGBM', 'anynet s3', 'opencv_sgbm', '<= 0.5', lambda r: r <= 0.5),
         ('AnyNet with SPN / SGBM', 'anynet s4', 'opencv_sgbm', '< 1', lambda r: r < 1))


def methods(model: str, threads: int, compare: str = '') -> dict[str, Callable[[np.ndarray, np.ndarray], object]]:
    """name -> call(left, right) for the OpenCV matchers and each stage count of ``model`` (and
    of the ``compare`` model, e.g. an earlier card, as 'before s<k>')."""
    out: dict[str, Callable] = {name: StereoEstimator(name, threads=threads) for name in ('opencv_bm', 'opencv_sgbm')}
    for label, card in (('anynet', model), ('before', compare)):
        for k in (1, 3, 4) if card else ():
            out[f'{label} s{k}'] = StereoEstimator(card, threads=threads, stages=k)
    out['node default: anynet s4 + fusion'] = StereoEstimator(model, threads=threads, fusion='sgbm')
    return out


def measure(model: str, threads: int, rounds: int, pair: tuple[np.ndarray, np.ndarray],
            compare: str = '') -> dict[str, float]:
    """Median ms per call of every method, interleaved over ``rounds`` (after one warm-up)."""
    cv2.setNumThreads(threads)
    calls = methods(model, threads, compare)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(rounds + 1):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call(*pair)
            if r:
                times[name].append(1e3 * (time.perf_counter() - t0))
    return {name: float(np.median(v)) for name, v in times.items()}


def report(results: dict[int, dict[str, float]], model: str, rounds: int) -> str:
    threads = sorted(results)
    head = '| | ' + ' | '.join(f'{t} thread{"s" * (t > 1)}' for t in threads)
    lines = [f'{model} vs OpenCV at {W}x{H}, median of {rounds} interleaved rounds (ms per call):', '',
             head + ' |', '|---' * (len(threads) + 1) + '|']
    for name in results[threads[0]]:
        lines.append(f'| {name} | ' + ' | '.join(f'{results[t][name]:.1f}' for t in threads) + ' |')
    lines += ['', head + ' | goal |', '|---' * (len(threads) + 2) + '|']
    for label, num, den, goal, ok in GOALS:
        for name in (num, num.replace('anynet', 'before')):
            if name not in results[threads[0]]:
                continue
            ratios = [results[t][name] / results[t][den] for t in threads]
            cells = [f'{r:.2f} ({"met" if ok(r) else "missed"})' for r in ratios]
            tag = ' (before)' if name.startswith('before') else ''
            lines.append(f'| {label}{tag} | ' + ' | '.join(cells) + f' | {goal} |')
    default = [results[t]['node default: anynet s4 + fusion'] / results[t]['opencv_sgbm'] for t in threads]
    lines.append('| (the stereo node\'s default, s4 + SGBM fusion at half size) / SGBM | '
                 + ' | '.join(f'{r:.2f}' for r in default) + ' | – |')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default=DEFAULT_STEREO)
    parser.add_argument('--rounds', type=int, default=12)
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--compare', default='', help='another card (e.g. the previous graphs) timed alongside')
    parser.add_argument('--out', default='')
    args = parser.parse_args(argv)
    cam = StereoCamera(width=W, height=H, fx=FX, fy=FX, cx=(W - 1) / 2, cy=(H - 1) / 2, baseline=B)
    scene = render_stereo(random_scene(seed=1), cam)
    pair = (scene['left'], scene['right'])
    load = [os.getloadavg()[0]]
    results = {}
    for t in args.threads:
        results[t] = measure(args.model, t, args.rounds, pair, args.compare)
        load.append(os.getloadavg()[0])
    text = report(results, args.model, args.rounds)
    text += ('\n\nload average (1 min) before and after each thread count: '
             + ' / '.join(f'{v:.2f}' for v in load) + ' (other processes: 2-thread timings need a quiet machine)')
    print(text)
    if args.out:
        Path(args.out).write_text(text + '\n')


if __name__ == '__main__':
    main()
