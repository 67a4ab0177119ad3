"""Fusion of AnyNet with SGBM (``StereoEstimator(..., fusion='sgbm')``) against both alone: accuracy
on rendered held-out pairs and on the real-camera check, latency at 640x480, and a figure.

Accuracy (every method single-threaded): bad-1, bad-3 (all GT pixels, holes count as bad), EPE
(over predicted pixels) and density, means over pairs, on two rendered folders
(``depth-ros-render`` output, 640x480) and on the board of ``depth-ros-realcheck`` (OpenCV's
stereo calibration sample), where SGBM searches ``realcheck.OPENCV_RANGE`` disparities (the board
reaches 222 px) and, for comparison, the node's default 128. "SGBM share" is the fraction of
pixels where the fused map took SGBM. Latency: median of ``--runs`` calls on one 640x480 pair
after 3 warm-up calls, ONNX Runtime / OpenCV on 1 and 2 threads.

    python bench/fusion.py --data basic:/work/data/eval_basic:60 real:/work/data/eval_real:48 \
        --figure models/eval/fusion.jpg --figure-pairs real:1 real:35 real:43 board:left03
"""
from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from depth_ros.inference import StereoEstimator
from depth_ros.metrics import MetricAccumulator, stereo_metrics
from depth_ros.training.data import open_reader
from depth_ros.training.realcheck import OPENCV_RANGE, load_check
from depth_ros.viz import colorize_depth, tile

MODEL = 'anynet_spn8'
KEYS = ('bad1', 'bad3', 'epe', 'density')


def configs(sgbm_range: int) -> dict[str, dict]:
    """label -> StereoEstimator kwargs (all single-threaded)."""
    sgbm = {'disparity_range': sgbm_range}
    out = {f'opencv_sgbm ({sgbm_range})': {'model': 'opencv_sgbm', 'sgbm': sgbm}}
    for stages in (3, 4):
        out[f'{MODEL} s{stages}'] = {'model': MODEL, 'stages': stages}
        out[f'{MODEL} s{stages} + sgbm ({sgbm_range})'] = {'model': MODEL, 'stages': stages, 'fusion': 'sgbm',
                                                           'sgbm': sgbm}
    return out


def load(spec: str) -> tuple[str, list[dict]]:
    """'name:folder:n' (rendered) or 'board' -> (name, samples with left, right, disparity, name)."""
    if spec == 'board':
        return 'board', load_check()[1]
    name, folder, n = spec.split(':')
    reader = open_reader('rendered', folder)
    return name, [dict(reader[i], name=f'{name}:{i}') for i in range(min(int(n), len(reader)))]


def score(kwargs: dict, samples: list[dict]) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean metrics (+ 'sgbm_share' for fusion) and the predictions."""
    kwargs = dict(kwargs)
    est = StereoEstimator(kwargs.pop('model'), threads=1, **kwargs)
    acc, preds = MetricAccumulator(), []
    for s in samples:
        pred = est(s['left'], s['right'])
        m = stereo_metrics(pred, s['disparity'])
        row = {k: m[k] for k in KEYS}
        if est._fusion:  # noqa: SLF001 - the bench reports which pixels the rule took
            row['sgbm_share'] = float(est._fusion.take.mean())  # noqa: SLF001
        acc.update(row)
        preds.append(pred)
    return acc.mean(), preds


def latency(left: np.ndarray, right: np.ndarray, runs: int) -> list[tuple[str, int, float]]:
    """(label, threads, median ms) at the pair's size."""
    rows = []
    for threads in (1, 2):
        cv2.setNumThreads(threads)
        ests = {'opencv_sgbm': StereoEstimator('opencv_sgbm', threads=threads)}
        for stages in (3, 4):
            ests[f'{MODEL} s{stages}'] = StereoEstimator(MODEL, stages=stages, threads=threads)
            ests[f'{MODEL} s{stages} + sgbm'] = StereoEstimator(MODEL, stages=stages, threads=threads, fusion='sgbm')
        if threads > 1:  # the same without the worker threads: network, then SGBM's two matchings
            ests[f'{MODEL} s4 + sgbm, one after the other'] = est = StereoEstimator(MODEL, threads=threads,
                                                                                  fusion='sgbm')
            est._fusion._pool = None  # noqa: SLF001
        for label, est in ests.items():
            def call(est=est, label=label) -> None:
                est(left, right)
                if label == 'opencv_sgbm':
                    est.confidence()  # its left-right check: the second matching fusion also runs
            for _ in range(3):
                call()
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                call()
                times.append(1e3 * (time.perf_counter() - t0))
            rows.append((label + (' (+ left-right check)' if label == 'opencv_sgbm' else ''), threads,
                         statistics.median(times)))
    return rows


def figure(picks: list[tuple[dict, dict[str, np.ndarray]]]) -> np.ndarray:
    """Rows of (left, ground truth, SGBM, AnyNet, fused) disparity maps on the ground truth's range."""
    panels = []
    for s, preds in picks:
        lo, hi = float(np.nanmin(s['disparity'])), float(np.nanmax(s['disparity']))
        panels += [(f"{s['name']} left", s['left']), ('ground truth', colorize_depth(s['disparity'], lo, hi))]
        panels += [(label, colorize_depth(pred, lo, hi)) for label, pred in preds.items()]
    return tile(panels, columns=5, cell=(256, 192), title='disparity (px): SGBM, AnyNet s4, AnyNet s4 + SGBM fusion')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', nargs='*', default=[], help="rendered folders as 'name:folder:n'")
    parser.add_argument('--runs', type=int, default=20, help='latency: timed calls per configuration')
    parser.add_argument('--figure', default='', help='write the figure here (JPEG, quality 80)')
    parser.add_argument('--figure-pairs', nargs='*', default=[], help="'name:index' or 'board:left03'")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    sets = [load(spec) for spec in args.data] + [load('board')]
    print('| data | method | bad-1 % | bad-3 % | EPE px | density % | SGBM share % |')
    print('|---|---|---:|---:|---:|---:|---:|')
    keep: dict[str, dict[str, np.ndarray]] = {}
    wanted = set(args.figure_pairs)
    for name, samples in sets:
        ranges = (OPENCV_RANGE, 128) if name == 'board' else (128,)
        for sgbm_range in ranges:
            for label, kwargs in configs(sgbm_range).items():
                if sgbm_range != ranges[0] and 'fusion' not in kwargs:
                    continue  # the board's second range: only the fused rows change
                m, preds = score(kwargs, samples)
                share = f"{100 * m['sgbm_share']:.0f}" if 'sgbm_share' in m else '–'
                print(f"| {name} ({len(samples)}) | {label} | {100 * m['bad1']:.1f} | {100 * m['bad3']:.1f} | "
                      f"{m['epe']:.2f} | {100 * m['density']:.1f} | {share} |", flush=True)
                for s, pred in zip(samples, preds):
                    key = f"{name}:{s['name'].split(':')[-1]}"
                    if key in wanted and sgbm_range == ranges[0] and 's3' not in label:
                        keep.setdefault(key, {})[label.replace(f' ({sgbm_range})', '')] = pred
    left, right = sets[-1][1][0]['left'], sets[-1][1][0]['right']
    if args.data:
        first = sets[0][1][0]
        left, right = first['left'], first['right']
    print(f'\n| method ({left.shape[1]}x{left.shape[0]}) | threads | latency ms (median) |\n|---|---:|---:|')
    for label, threads, ms in latency(left, right, args.runs):
        print(f'| {label} | {threads} | {ms:.0f} |', flush=True)
    if args.figure:
        by_key = {f"{name}:{s['name'].split(':')[-1]}": s for name, samples in sets for s in samples}
        image = figure([(by_key[k], keep[k]) for k in args.figure_pairs])
        cv2.imwrite(args.figure, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])


if __name__ == '__main__':
    main()
