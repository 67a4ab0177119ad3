"""Which confidence separates good from bad stereo pixels best: sparsification curves on rendered
synthetic pairs (exact disparity; seeds outside the training and test sets).

For each measure, pixels with ground truth are dropped in order of rising confidence; the curve
is bad-3 (share of |d - d_true| > 3 px) of those kept against the share dropped, and its AUC
(mean over 0 .. 90 % dropped) is compared with the oracle (dropping by true error) and with no
confidence (a flat curve). Also checks the safety cases: blank, grey and unrelated pairs.

    python bench/confidence.py [--pairs 12] [--plot models/eval/sparsification.png]
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from depth_ros.inference import StereoEstimator
from depth_ros.inference.confidence import left_right, photometric, stage_agreement
from depth_ros.inference.images import to_grey
from depth_ros.model_card import DEFAULT_STEREO
from depth_ros.synthetic import StereoCamera, random_scene, render_stereo

W, H, FX, B = 640, 480, 500.0, 0.1
DROPPED = np.linspace(0.0, 0.9, 19)


def sparsification(conf: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """bad-3 of the kept pixels after dropping each share in DROPPED, least confident first."""
    order = np.argsort(conf, kind='stable')
    bad = bad[order]
    suffix = np.cumsum(bad[::-1])[::-1]  # bad pixels among those from index i on
    starts = (DROPPED * bad.size).astype(int)
    return suffix[starts] / (bad.size - starts)


def measures(net: StereoEstimator, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, dict]:
    """Full-network disparity and each candidate confidence (same size, images unresized)."""
    disparity = net(left, right)
    stages = net._net.outputs  # noqa: SLF001 - the bench compares the estimator's internals
    gl, gr = to_grey(left), to_grey(right)
    shipped = net.confidence()
    flipped = net(np.ascontiguousarray(right[:, ::-1]), np.ascontiguousarray(left[:, ::-1]))[:, ::-1]
    out = {'stage agreement': stage_agreement(stages[0], stages[-1]),
           'photometric (ZNCC)': photometric(gl, gr, disparity),
           'left-right (2nd run)': left_right(disparity, np.ascontiguousarray(flipped))}
    out['photometric x stages'] = out['photometric (ZNCC)'] * out['stage agreement']
    out['shipped (stages, informative)'] = shipped
    return disparity, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default=DEFAULT_STEREO)
    parser.add_argument('--pairs', type=int, default=12)
    parser.add_argument('--plot', default='', help='write the curves to this image (PNG/JPG)')
    args = parser.parse_args()
    cam = StereoCamera(width=W, height=H, fx=FX, fy=FX, cx=(W - 1) / 2, cy=(H - 1) / 2, baseline=B)
    net = StereoEstimator(args.model)
    curves: dict[str, list[np.ndarray]] = {}
    for seed in range(5000, 5000 + args.pairs):
        scene = render_stereo(random_scene(seed=seed), cam)
        disparity, confs = measures(net, scene['left'], scene['right'])
        gt = scene['disparity']
        keep = ~scene['occlusion'] & np.isfinite(gt)
        bad = ~(np.abs(np.nan_to_num(disparity, nan=1e6) - gt) <= 3)
        confs['oracle'] = -np.abs(np.nan_to_num(disparity, nan=1e6) - gt)
        confs['none (random)'] = np.random.default_rng(seed).random(gt.shape)
        for name, conf in confs.items():
            curves.setdefault(name, []).append(sparsification(conf[keep], bad[keep]))
    print(f'{args.model}, {args.pairs} rendered {W}x{H} pairs: sparsification AUC of bad-3 (lower is better)')
    mean = {name: np.mean(c, 0) for name, c in curves.items()}
    for name, curve in sorted(mean.items(), key=lambda kv: kv[1].mean()):
        print(f'  {name:32s} AUC {curve.mean():.4f}   bad-3 kept at 0/50/90 % dropped: '
              f'{curve[0]:.3f} {curve[10]:.3f} {curve[-1]:.3f}')
    rng = np.random.default_rng(0)
    scene = render_stereo(random_scene(seed=5999), cam)
    cases = {'black': (np.zeros((H, W, 3), np.uint8),) * 2, 'white': (np.full((H, W, 3), 255, np.uint8),) * 2,
             'grey': (np.full((H, W, 3), 128, np.uint8),) * 2,
             'unrelated': (scene['left'], render_stereo(random_scene(seed=5998), cam)['right']),
             'noise': tuple(rng.integers(0, 256, (2, H, W, 3), np.uint8)), 'normal': (scene['left'], scene['right'])}
    print('safety: mean confidence / share of pixels with confidence >= 0.01 (the default threshold), 0.1 / warning')
    for name, (left, right) in cases.items():
        net(left, right)
        conf = net.confidence()
        print(f'  {name:10s} {conf.mean():.3f} {np.mean(conf >= 0.01):.3f} {np.mean(conf >= 0.1):.3f} {net.warning}')
    if args.plot:
        _plot(mean, args.plot, args.model)


def _plot(mean: dict[str, np.ndarray], path: str, model: str) -> None:
    """Small line plot of the curves, drawn with OpenCV (no matplotlib in the runtime)."""
    size, margin = (360, 560), 40
    img = np.full((*size, 3), 255, np.uint8)
    top = max(c.max() for c in mean.values()) * 1.1
    colors = [(200, 0, 0), (0, 150, 0), (0, 0, 220), (180, 0, 180), (0, 140, 200), (90, 90, 90), (0, 0, 0)]
    cv2.rectangle(img, (margin, 10), (size[1] - 10, size[0] - margin), (0, 0, 0), 1)
    for i, (name, curve) in enumerate(sorted(mean.items(), key=lambda kv: kv[1].mean())):
        xs = margin + DROPPED / 0.9 * (size[1] - 10 - margin)
        ys = size[0] - margin - curve / top * (size[0] - margin - 10)
        pts = np.stack([xs, ys], 1).astype(np.int32)
        cv2.polylines(img, [pts], False, colors[i % len(colors)], 2, cv2.LINE_AA)
        cv2.putText(img, f'{name} ({curve.mean():.3f})', (margin + 150, 30 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX,
                    0.42, colors[i % len(colors)], 1, cv2.LINE_AA)
    cv2.putText(img, f'{model}: bad-3 of kept pixels vs share dropped (0..90 %)', (margin, size[0] - 12),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f'{top:.2f}', (2, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.imwrite(path, img)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
