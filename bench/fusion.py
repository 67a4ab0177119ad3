"""Fusion of AnyNet with SGBM (``StereoEstimator(..., fusion='sgbm')``) against both alone: accuracy
on rendered held-out pairs and on the real-camera check, latency at 640x480, and a figure.

Accuracy (every method single-threaded): bad-1, bad-3 (all GT pixels, holes count as bad), EPE
(over predicted pixels) and density, means over pairs, on two rendered folders
(``depth-ros-render`` output, 640x480) and on the board of ``depth-ros-realcheck`` (OpenCV's
stereo calibration sample), where SGBM searches ``realcheck.OPENCV_RANGE`` disparities (the board
reaches 222 px) and, for comparison, the node's default 128. "SGBM share" is the fraction of
pixels where the fused map took SGBM. Latency: median of ``--runs`` calls on one 640x480 pair
after 3 warm-up calls, ONNX Runtime / OpenCV on 1 and 2 threads, with the load average.

    python bench/fusion.py --data basic:/work/data/eval_basic:60 real:/work/data/eval_real:48 \
        --figure models/eval/fusion.jpg --figure-pairs real:1 real:35 real:43 board:left03

``--right`` instead compares ways of getting the right view's disparity for the left-right test
(the left view always matched by SGBM at full size): accuracy of the fused s3 / s4 maps on the
same sets and the right matching's time at 640x480 (one thread).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np

from depth_ros.inference import StereoEstimator
from depth_ros.inference.confidence import left_right
from depth_ros.inference.fusion import LR_MAX, fuse, half_params
from depth_ros.inference.opencv_stereo import DEFAULTS, OpenCVStereo
from depth_ros.metrics import MetricAccumulator, stereo_metrics
from depth_ros.model_card import DEFAULT_STEREO
from depth_ros.training.data import open_reader
from depth_ros.training.realcheck import OPENCV_RANGE, load_check
from depth_ros.viz import colorize_depth, tile

MODEL = DEFAULT_STEREO  # the stereo node's default network
SCALES = {0.5: 'half', 1.0: 'full'}  # fusion_scale -> label: the left view matched at half / full size
KEYS = ('bad1', 'bad3', 'epe', 'density')


def configs(sgbm_range: int) -> dict[str, dict]:
    """label -> StereoEstimator kwargs (all single-threaded)."""
    sgbm = {'disparity_range': sgbm_range}
    out = {f'opencv_sgbm ({sgbm_range})': {'model': 'opencv_sgbm', 'sgbm': sgbm}}
    for stages in (3, 4):
        out[f'{MODEL} s{stages}'] = {'model': MODEL, 'stages': stages}
        for scale, name in SCALES.items():
            out[f'{MODEL} s{stages} + sgbm {name} ({sgbm_range})'] = {
                'model': MODEL, 'stages': stages, 'fusion': 'sgbm', 'fusion_scale': scale, 'sgbm': sgbm}
    free = {'model': MODEL, 'stages': 4, 'spn_limit': 0.0}  # the card limits the SPN to stage 3 +- 0.5 px
    out[f'{MODEL} s4, spn unlimited'] = free
    out[f'{MODEL} s4, spn unlimited + sgbm half ({sgbm_range})'] = {**free, 'fusion': 'sgbm', 'sgbm': sgbm}
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
            for scale, name in SCALES.items():
                ests[f'{MODEL} s{stages} + sgbm {name}'] = StereoEstimator(MODEL, stages=stages, threads=threads,
                                                                          fusion='sgbm', fusion_scale=scale)
        if threads > 1:  # the same without the worker threads: network, then SGBM's two matchings
            ests[f'{MODEL} s4 + sgbm half, one after the other'] = est = StereoEstimator(MODEL, threads=threads,
                                                                                       fusion='sgbm')
            est._fusion._pool = None  # noqa: SLF001
        for name in SCALES.values():
            ests[f'fusion\'s matchings ({name}: left at {name} size + right at half size)'] = \
                ests[f'{MODEL} s4 + sgbm {name}']
        for label, est in ests.items():
            def call(est=est, label=label) -> None:
                if label.startswith('fusion'):
                    est._fusion._match(left, right)  # noqa: SLF001 - the SGBM work alone
                    return
                est(left, right)
                if label == 'opencv_sgbm':
                    est.confidence()  # its left-right check: the second matching fusion ran before
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


def _half(matcher: OpenCVStereo) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Right view's disparity matched at half size by ``matcher``, back at full size (px)."""
    def right_view(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        h, w = left.shape[:2]
        small = [cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for img in (left, right)]
        return cv2.resize(matcher.right_disparity(*small), (w, h), interpolation=cv2.INTER_NEAREST) * 2
    return right_view


def right_views(sgbm_range: int) -> dict[str, tuple[Callable | None, float]]:
    """label -> (right view's disparity (px, NaN invalid) of a pair, or None: the left matching's
    own 1 px check alone; largest left-right difference taken, px)."""
    sgbm = dict(DEFAULTS['opencv_sgbm'], disparity_range=sgbm_range)
    half = half_params(sgbm)
    full = {'SGBM (the left\'s parameters)': OpenCVStereo('opencv_sgbm', sgbm),
            'SGBM, 3 px window': OpenCVStereo('opencv_sgbm', dict(sgbm, correlation_window_size=3)),
            'SGBM HH4': OpenCVStereo('opencv_sgbm', dict(sgbm, sgbm_mode='hh4')),
            'StereoBM, 9 px window': OpenCVStereo('opencv_bm', {'disparity_range': sgbm_range,
                                                                'correlation_window_size': 9}),
            'StereoBM, 15 px window': OpenCVStereo('opencv_bm', {'disparity_range': sgbm_range})}
    out: dict[str, tuple[Callable | None, float]] = {'none (SGBM\'s internal check)': (None, 0.0)}
    out |= {f'full size, {label}': (m.right_disparity, 1.0) for label, m in full.items()}
    out['full size, SGBM grey'] = (lambda a, b, m=full['SGBM (the left\'s parameters)']: m.right_disparity(
        cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)), 1.0)
    for window in (5, 3):
        matcher = OpenCVStereo('opencv_sgbm', dict(half, correlation_window_size=window))
        for tolerance in (1.0, LR_MAX):
            out[f'half size, SGBM {window} px window, within {tolerance:g} px'] = (_half(matcher), tolerance)
    out['half size, StereoBM 9 px window'] = (_half(OpenCVStereo('opencv_bm', {
        'disparity_range': half['disparity_range'], 'correlation_window_size': 9})), 1.0)
    return out


def compare_right_views(sets: list[tuple[str, list[dict]]]) -> None:
    """Print the right-view table (fused s3 / s4 bad-1, bad-3, SGBM share; time of the right matching)."""
    nets = {k: StereoEstimator(MODEL, threads=1, stages=k) for k in (3, 4)}
    pair = sets[0][1][0]
    times = {}
    for label, (right_view, _) in right_views(128).items():
        runs = []
        for _ in range(6):
            t0 = time.perf_counter()
            if right_view:
                right_view(pair['left'], pair['right'])
            runs.append(1e3 * (time.perf_counter() - t0))
        times[label] = statistics.median(runs[1:])
    print(f'load average {os.getloadavg()[0]:.1f}')
    print('| data | right view | right ms | s3 bad-1 % | s3 bad-3 % | s4 bad-1 % | s4 bad-3 % | SGBM share % |')
    print('|---|---|---:|---:|---:|---:|---:|---:|')
    for name, samples in sets:
        sgbm_range = OPENCV_RANGE if name == 'board' else 128
        left_matcher = OpenCVStereo('opencv_sgbm', {'disparity_range': sgbm_range})
        cached = []
        for s in samples:
            disparity = left_matcher.disparity(s['left'], s['right'])
            disparity[disparity < 0] = np.nan
            cached.append((disparity, {k: net(s['left'], s['right']) for k, net in nets.items()}))
        for label, (right_view, tolerance) in right_views(sgbm_range).items():
            acc = {k: MetricAccumulator() for k in nets}
            for s, (disparity, network) in zip(samples, cached):
                if right_view is None:
                    consistent = np.isfinite(disparity)
                else:
                    consistent = left_right(disparity, right_view(s['left'], s['right'])) >= np.exp(-tolerance ** 2)
                for k, net in network.items():
                    with np.errstate(invalid='ignore'):
                        take = consistent & (net <= sgbm_range - 1 - 4)
                    m = stereo_metrics(fuse(net, disparity, take), s['disparity'])
                    acc[k].update({'bad1': m['bad1'], 'bad3': m['bad3'], 'share': float(take.mean())})
            m3, m4 = acc[3].mean(), acc[4].mean()
            print(f"| {name} | {label} | {times[label]:.0f} | {100 * m3['bad1']:.1f} | {100 * m3['bad3']:.1f} | "
                  f"{100 * m4['bad1']:.1f} | {100 * m4['bad3']:.1f} | {100 * m4['share']:.0f} |", flush=True)


def figure(picks: list[tuple[dict, dict[str, np.ndarray]]]) -> np.ndarray:
    """Rows of (left, ground truth, SGBM, AnyNet, fused) disparity maps on the ground truth's range."""
    panels = []
    for s, preds in picks:
        lo, hi = float(np.nanmin(s['disparity'])), float(np.nanmax(s['disparity']))
        panels += [(f"{s['name']} left", s['left']), ('ground truth', colorize_depth(s['disparity'], lo, hi))]
        panels += [(label, colorize_depth(pred, lo, hi)) for label, pred in preds.items()]
    return tile(panels, columns=5, cell=(256, 192),
                title='disparity (px): SGBM, AnyNet s4, AnyNet s4 + SGBM fusion (half size)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', nargs='*', default=[], help="rendered folders as 'name:folder:n'")
    parser.add_argument('--runs', type=int, default=20, help='latency: timed calls per configuration')
    parser.add_argument('--figure', default='', help='write the figure here (JPEG, quality 80)')
    parser.add_argument('--figure-pairs', nargs='*', default=[], help="'name:index' or 'board:left03'")
    parser.add_argument('--right', action='store_true', help="compare ways to get the right view's disparity")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    sets = [load(spec) for spec in args.data] + [load('board')]
    if args.right:
        compare_right_views(sets)
        return
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
                    if key in wanted and sgbm_range == ranges[0] and not any(
                            w in label for w in ('s3', 'full', 'unlimited')):
                        keep.setdefault(key, {})[label.replace(f' ({sgbm_range})', '')] = pred
    left, right = sets[-1][1][0]['left'], sets[-1][1][0]['right']
    if args.data:
        first = sets[0][1][0]
        left, right = first['left'], first['right']
    print(f'\nload average before: {" ".join(f"{x:.1f}" for x in os.getloadavg())}')
    print(f'| method ({left.shape[1]}x{left.shape[0]}) | threads | latency ms (median) |\n|---|---:|---:|')
    for label, threads, ms in latency(left, right, args.runs):
        print(f'| {label} | {threads} | {ms:.0f} |', flush=True)
    print(f'load average after: {" ".join(f"{x:.1f}" for x in os.getloadavg())}')
    if args.figure:
        by_key = {f"{name}:{s['name'].split(':')[-1]}": s for name, samples in sets for s in samples}
        image = figure([(by_key[k], keep[k]) for k in args.figure_pairs])
        cv2.imwrite(args.figure, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])


if __name__ == '__main__':
    main()
