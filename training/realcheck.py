"""Real-camera check: OpenCV's stereo calibration sample with exact disparity over the chessboard.

Debian's ``opencv-doc`` ships a real grayscale stereo rig's calibration shots (``left01.jpg`` ..
``right14.jpg``, 640x480, a 9x6 inner-corner chessboard; no pair 10). The rig is calibrated from
all of them (OpenCV; the square size is unknown, so lengths are in squares, which disparity does
not need), every pair is rectified, and the board's corners are mapped into both rectified views.
The board is a plane, so its disparity is affine in the left image, d = a*x + b*y + c, fitted to
the corner disparities (residual ~0.1-0.5 px, reported per pair as ``fit_rms``) and dense over the
board (its 10x7 squares; 2 px eroded). Real lenses, noise and JPEG; disparities 100-205 px.

Scores (board region; a pixel without a prediction counts as bad):

- stereo: EPE, bad-1/2/3 and density, plus the left-right photometric error on the whole image
  (mean |left - right warped by the prediction|, grey levels / 255, over predicted pixels whose
  match lies inside the right image; ``photo_density`` = their share of the image);
- mono: AbsRel after median scaling (vs a constant map, ``const_absrel``) and the MiDaS
  scale-and-shift-invariant AbsRel of disparity (inverse depth fitted to the ground truth's by
  least squares; vs the "lower rows are nearer" prior, disparity = row, ``rows_ssi_absrel``).
  ``synthetic_boards`` renders boards with exact masks for the same mono protocol in-domain
  (``--synthetic-boards N``): a network that fails there fails for want of skill, not of realism.

    depth-ros-realcheck --figure models/eval/real_check.jpg --update-card

It is small and narrow (one board, one rig): a real-world check beside the synthetic split, not
a target to tune to. It is NOT OpenCV's aloe pair nor scikit-image's stereo data (reserved).
"""
from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import cv2
import numpy as np

from depth_ros.inference import DepthEstimator, StereoEstimator
from depth_ros.metrics import MetricAccumulator, depth_metrics, stereo_metrics
from depth_ros.model_card import shipped_cards
from depth_ros.synthetic import render_view, sample_views, warp_right_to_left
from depth_ros.synthetic.sampler import HELD as BOARD_SLOT, held_mask
from depth_ros.synthetic.textures import CACHE as TEXTURE_CACHE, PhotoBank

from .data.rendered import rgb8
from .realcheck_report import card_entries, figure, figure_labels, markdown

DATA_DIR = Path(os.environ.get('DEPTH_ROS_CALIB_DATA', '/usr/share/doc/opencv-doc/examples/data'))
PATTERN = (9, 6)            # inner corners of the chessboard
CARD_KEY = 'opencv_calib_board'
OPENCV_RANGE = 256          # SGBM / BM disparities searched here (the board reaches ~205 px)
_SUBPIX = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
Sample = dict[str, Any]


@dataclass
class Rig:
    """Calibrated and rectified stereo rig (OpenCV conventions); lengths in chessboard squares."""

    K1: np.ndarray
    d1: np.ndarray
    K2: np.ndarray
    d2: np.ndarray
    R1: np.ndarray
    R2: np.ndarray
    P1: np.ndarray
    P2: np.ndarray
    size: tuple[int, int]   # (w, h) px
    rms: float              # stereo reprojection error, px

    @property
    def fx(self) -> float:
        """Rectified focal length, px."""
        return float(self.P1[0, 0])

    @property
    def baseline(self) -> float:
        """Baseline, squares."""
        return float(-self.P2[0, 3] / self.P2[0, 0])


def find_pairs(root: Path = DATA_DIR) -> list[tuple[Path, Path]]:
    """(left, right) image paths of the sample, in order; raises FileNotFoundError if absent."""
    lefts = sorted(p for p in Path(root).glob('left*.jpg') if re.fullmatch(r'left\d\d\.jpg', p.name))
    pairs = [(p, p.with_name(p.name.replace('left', 'right'))) for p in lefts]
    pairs = [(a, b) for a, b in pairs if b.is_file()]
    if not pairs:
        raise FileNotFoundError(f'no left??.jpg / right??.jpg in {root}: apt-get install opencv-doc '
                                '(or set DEPTH_ROS_CALIB_DATA)')
    return pairs


def _corners(image: np.ndarray) -> np.ndarray | None:
    """Sub-pixel chessboard corners (54, 1, 2) float32, or None when the board is not found."""
    found, corners = cv2.findChessboardCorners(image, PATTERN)
    return cv2.cornerSubPix(image, corners, (11, 11), (-1, -1), _SUBPIX) if found else None


def calibrate(pairs: Sequence[tuple[Path, Path]]) -> tuple[Rig, list[tuple[Path, Path, np.ndarray, np.ndarray]]]:
    """Calibrate and rectify the rig from the pairs whose board both views find.

    Returns the rig and, per usable pair, (left path, right path, left corners, right corners)
    in the raw images."""
    board = np.zeros((PATTERN[0] * PATTERN[1], 3), np.float32)
    board[:, :2] = np.mgrid[0:PATTERN[0], 0:PATTERN[1]].T.reshape(-1, 2)
    found = []
    for left, right in pairs:
        a, b = cv2.imread(str(left), cv2.IMREAD_GRAYSCALE), cv2.imread(str(right), cv2.IMREAD_GRAYSCALE)
        ca, cb = _corners(a), _corners(b)
        if ca is not None and cb is not None:
            found.append((left, right, ca, cb))
    if len(found) < 3:
        raise RuntimeError(f'the chessboard was found in only {len(found)} pairs: cannot calibrate')
    size = a.shape[::-1]
    objects = [board] * len(found)
    _, K1, d1, _, _ = cv2.calibrateCamera(objects, [f[2] for f in found], size, None, None)
    _, K2, d2, _, _ = cv2.calibrateCamera(objects, [f[3] for f in found], size, None, None)
    rms, K1, d1, K2, d2, rot, t, _, _ = cv2.stereoCalibrate(objects, [f[2] for f in found], [f[3] for f in found],
                                                            K1, d1, K2, d2, size, flags=cv2.CALIB_FIX_INTRINSIC)
    R1, R2, P1, P2, _, _, _ = cv2.stereoRectify(K1, d1, K2, d2, size, rot, t, alpha=0)
    return Rig(K1, d1, K2, d2, R1, R2, P1, P2, size, float(rms)), found


def board_mask(corners: np.ndarray, shape: tuple[int, int], erode: int = 2) -> np.ndarray:
    """(H, W) bool: the board's squares (one square beyond the inner corners), from rectified corners (54, 2)."""
    grid = np.mgrid[0:PATTERN[0], 0:PATTERN[1]].T.reshape(-1, 2).astype(np.float32)
    homography, _ = cv2.findHomography(grid, corners.astype(np.float32))
    outline = np.float32([[-1, -1], [PATTERN[0], -1], [PATTERN[0], PATTERN[1]], [-1, PATTERN[1]]])
    polygon = cv2.perspectiveTransform(outline[None], homography)[0]
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    if erode:
        mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return mask.astype(bool)


def load_check(root: Path = DATA_DIR, names: Sequence[str] | None = None) -> tuple[Rig, list[Sample]]:
    """The rig (calibrated on every pair) and the rectified samples (``names`` e.g. ['left01']: a subset).

    Sample keys: 'left', 'right' (H, W, 3) uint8 RGB (grey replicated), 'disparity' (H, W) float32 px,
    NaN off the board; 'depth' (squares, NaN off the board); 'board' (H, W) bool; 'fx' (px);
    'baseline' (squares); 'fit_rms' (px, the plane fit's residual at the corners); 'dy' (px, mean
    vertical offset of the corners after rectification); 'name'.
    """
    rig, found = calibrate(find_pairs(root))
    maps = [cv2.initUndistortRectifyMap(K, d, R, P, rig.size, cv2.CV_32FC1)
            for K, d, R, P in ((rig.K1, rig.d1, rig.R1, rig.P1), (rig.K2, rig.d2, rig.R2, rig.P2))]
    samples = []
    for left, right, cl, cr in found:
        if names is not None and left.stem not in names:
            continue
        pl = cv2.undistortPoints(cl, rig.K1, rig.d1, R=rig.R1, P=rig.P1).reshape(-1, 2)
        pr = cv2.undistortPoints(cr, rig.K2, rig.d2, R=rig.R2, P=rig.P2).reshape(-1, 2)
        design = np.c_[pl, np.ones(len(pl))]
        plane, *_ = np.linalg.lstsq(design, pl[:, 0] - pr[:, 0], rcond=None)
        fit_rms = float(np.sqrt(np.mean((design @ plane - (pl[:, 0] - pr[:, 0])) ** 2)))
        views = [cv2.remap(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), mx, my, cv2.INTER_LINEAR)
                 for p, (mx, my) in zip((left, right), maps)]
        h, w = views[0].shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        board = board_mask(pl, (h, w))
        disparity = np.where(board, plane[0] * xs + plane[1] * ys + plane[2], np.nan).astype(np.float32)
        samples.append({'name': left.stem, 'left': cv2.cvtColor(views[0], cv2.COLOR_GRAY2RGB),
                        'right': cv2.cvtColor(views[1], cv2.COLOR_GRAY2RGB), 'disparity': disparity,
                        'depth': (rig.fx * rig.baseline / disparity).astype(np.float32), 'board': board,
                        'fx': rig.fx, 'baseline': rig.baseline, 'fit_rms': fit_rms,
                        'dy': float(np.mean(np.abs(pl[:, 1] - pr[:, 1])))})
    return rig, samples


def synthetic_boards(n: int = 48, seed: int = 555, size: tuple[int, int] = (240, 320),
                     textures: Path | None = TEXTURE_CACHE) -> list[Sample]:
    """The mono protocol's in-domain counterpart: renders of ``content='boards'`` (40-70 deg lenses)
    whose board covers at least a tenth of the view, with the keys ``score_mono`` reads ('left',
    'depth' m and 'disparity' 1/m, NaN off the board; 'board'; 'fx'; 'name'). The board mask is
    exact: the pixels whose depth changes when the board (a sheet here) is taken out of the same
    scene, 2 px eroded as on the real board. ``textures``:
    the photo bank's folder (None, or a folder without photographs: procedural textures only)."""
    bank = PhotoBank.load(textures) if textures else None
    samples: list[Sample] = []
    for chunk in range(max(1, n)):   # 16 scenes a chunk, most with a board that large: ends long before
        rng = np.random.default_rng(np.random.SeedSequence([seed, chunk]))
        scene, view = sample_views(rng, 16, *size, hfov_deg=(40.0, 70.0), content='boards', photos=bank)
        thin = scene.size.copy()
        thin[:, BOARD_SLOT, 2] = 1e-4                 # a sheet: no side faces inside the mask
        scene = replace(scene, size=thin)
        depth, rgb = render_view(scene, **view)
        nearer = held_mask(scene, view, depth).astype(np.uint8)
        for i in np.nonzero(nearer.mean((1, 2)) >= 0.1)[0]:
            board = cv2.erode(nearer[i], np.ones((5, 5), np.uint8), borderType=cv2.BORDER_CONSTANT,
                              borderValue=0).astype(bool)   # as the real board: 2 px in
            z = np.where(board, depth[i], np.nan).astype(np.float32)
            samples.append({'name': f'board{len(samples):03d}', 'board': board, 'depth': z, 'disparity': 1.0 / z,
                            'fx': float(view['fx'][i]),
                            'left': rgb8(rgb, i)})
            if len(samples) == n:
                return samples
    return samples


# ---------------------------------------------------------------------------------------- scoring
def photometric(left: np.ndarray, right: np.ndarray, disparity: np.ndarray) -> dict[str, float]:
    """Left-right consistency of a disparity map on the whole image: 'photo_l1' (grey / 255) and
    'photo_density' (share of the image with a prediction whose match is inside the right view)."""
    grey_l = left[..., 0].astype(np.float32) / 255.0
    warped, inside = warp_right_to_left(right[..., 0].astype(np.float32) / 255.0, disparity)
    with np.errstate(invalid='ignore'):
        used = inside & np.isfinite(disparity) & (disparity > 0)
    l1 = float(np.abs(grey_l - warped)[used].mean()) if used.any() else float('nan')
    return {'photo_l1': l1, 'photo_density': float(used.mean())}


def score_stereo(estimator: StereoEstimator, samples: list[Sample]) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean board metrics (EPE, bad-N, density) and photometric consistency, and the predictions."""
    acc, preds = MetricAccumulator(), []
    for s in samples:
        pred = estimator(s['left'], s['right'])
        preds.append(pred)
        m = stereo_metrics(pred, s['disparity'])
        board = {k: m[k] for k in ('density', 'epe', 'bad1', 'bad2', 'bad3')}
        acc.update(board | photometric(s['left'], s['right'], pred))
    return acc.mean(), preds


def plane_slope(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(2,) the least-squares plane z = a*x + b*y + c through ``depth`` on ``mask``: (a, b) over the
    mean depth there (relative change per px along x, y); NaN where fewer than 3 pixels are finite."""
    ys, xs = np.nonzero(mask & np.isfinite(depth))
    if len(xs) < 3:
        return np.full(2, np.nan)
    z = depth[ys, xs].astype(np.float64)
    (a, b, _), *_ = np.linalg.lstsq(np.c_[xs, ys, np.ones(len(xs))], z, rcond=None)
    return np.array([a, b]) / z.mean()


def slant(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """How a prediction tilts the board: 'slant_cos', the cosine between the planes' relative depth
    gradients (1: the right direction, 0: unrelated, -1: mirrored), and 'slant_gain', the prediction's
    gradient magnitude over the ground truth's (1: right, 0: flat as a constant map)."""
    p, g = plane_slope(pred, mask), plane_slope(gt, mask)
    norm_p, norm_g = float(np.linalg.norm(p)), float(np.linalg.norm(g))
    if not norm_p > 1e-9 or not norm_g > 1e-9:   # flat to rounding (a constant map): no direction
        return {'slant_cos': float('nan'), 'slant_gain': float('nan')}
    return {'slant_cos': float(p @ g) / (norm_p * norm_g), 'slant_gain': norm_p / norm_g}


def score_mono(estimator: DepthEstimator, samples: list[Sample]) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean board metrics of a mono network next to its two trivial baselines (see the module doc),
    and the slant of its board (``slant``): whether a miss is a wrong tilt or a flat board."""
    acc, preds = MetricAccumulator(), []
    for s in samples:
        pred = estimator(s['left'], fx=s['fx'])
        preds.append(pred)
        gt_depth, gt_disp = s['depth'], s['disparity']
        with np.errstate(divide='ignore', invalid='ignore'):
            inverse = np.where(pred > 0, 1.0 / pred, np.nan)
        rows = np.broadcast_to(np.arange(1, pred.shape[0] + 1, dtype=np.float64)[:, None], pred.shape)
        acc.update({
            'absrel_median': depth_metrics(pred, gt_depth, align_mode='median')['absrel'],
            'const_absrel': depth_metrics(np.ones_like(gt_depth), gt_depth, align_mode='median')['absrel'],
            'ssi_absrel': depth_metrics(inverse, gt_disp, align_mode='lsq_shift')['absrel'],
            'rows_ssi_absrel': depth_metrics(rows, gt_disp, align_mode='lsq_shift')['absrel'],
            'density': float(np.isfinite(pred)[s['board']].mean()),
            **slant(pred, gt_depth, s['board']),
        })
    return acc.mean(), preds


# ---------------------------------------------------------------------------------------- running
def stereo_configs(fusion: bool = False) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, model, StereoEstimator kwargs): OpenCV (disparity range OPENCV_RANGE), and every shipped
    stereo network at every stage count, at full size (input_scale 1) and half size (0.5), and with
    its SPN unlimited when its card limits it ('... spn unlimited'); with ``fusion`` also each at
    full size fused with SGBM (same range; labels '... + sgbm')."""
    sgbm = {'disparity_range': OPENCV_RANGE}
    configs = [(m, m, {'sgbm': sgbm}) for m in ('opencv_sgbm', 'opencv_bm')]
    for card in shipped_cards('stereo'):
        fused = {'fusion': 'sgbm', 'sgbm': sgbm}
        free = {'spn_limit': 0.0, 'stages': max(card.stages)} if card.output.get('spn_limit') else None
        variants = [('', {'input_scale': 1.0}), (' @0.5', {'input_scale': 0.5})]
        variants += [(' spn unlimited', {'input_scale': 1.0, **free})] if free else []
        variants += [(' + sgbm', fused)] if fusion else []
        variants += [(' spn unlimited + sgbm', {**fused, **free})] if fusion and free else []
        for suffix, kwargs in variants:
            for stages in card.stages if 'stages' not in kwargs else [kwargs['stages']]:
                configs.append((f'{card.name} s{stages}{suffix}', card.name, {'stages': stages, **kwargs}))
    return configs


def run_check(samples: list[Sample], mono: bool = True, fusion: bool = False,
              stereo: bool = True, mono_models: Sequence[str] = ()) -> dict[str, Any]:
    """Scores of every configuration: {'stereo': {label: metrics}, 'mono': {name: metrics},
    'predictions': {label: [maps]}, 'models': {label: (model, kwargs)}}. ``mono_models``: the mono
    models scored (card names, card files or trainer checkpoints; default: every shipped one)."""
    result: dict[str, Any] = {'stereo': {}, 'mono': {}, 'predictions': {}, 'models': {}}
    for label, model, kwargs in stereo_configs(fusion) if stereo else []:
        result['stereo'][label], result['predictions'][label] = score_stereo(StereoEstimator(model, **kwargs), samples)
        result['models'][label] = (model, kwargs)
    for name in (mono_models or [card.name for card in shipped_cards('mono')]) if mono else []:
        result['mono'][name], result['predictions'][name] = score_mono(DepthEstimator(name), samples)
        result['models'][name] = (name, {})
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """``depth-ros-realcheck``: score every shipped model and OpenCV on the real-camera check."""
    p = argparse.ArgumentParser(prog='depth-ros-realcheck', description=__doc__.splitlines()[0])
    p.add_argument('--data', type=Path, default=DATA_DIR, help='folder with left01.jpg ... (opencv-doc)')
    p.add_argument('--pairs', nargs='*', help='score only these pairs (e.g. left01 left05)')
    p.add_argument('--no-mono', action='store_true', help='stereo only')
    p.add_argument('--mono', nargs='+', default=[], metavar='MODEL',
                   help='score only these mono models (card names, card files or trainer checkpoints .pt), '
                        'no stereo, no cards updated: e.g. a training run against the default')
    p.add_argument('--fusion', action='store_true', help="also every stereo network fused with SGBM (fusion='sgbm')")
    p.add_argument('--figure', type=Path, help='write the figure here (e.g. models/eval/real_check.jpg)')
    p.add_argument('--synthetic-boards', type=int, default=0, metavar='N',
                   help='also score the mono models with the same protocol on N rendered boards (content boards; '
                        'the photo bank when rendered): the in-domain counterpart of the board')
    p.add_argument('--out', type=Path, help='write the scores as JSON here')
    p.add_argument('--update-card', action='store_true',
                   help=f"store the scores in each shipped model's card ({CARD_KEY})")
    args = p.parse_args(argv)
    rig, samples = load_check(args.data, args.pairs)
    print(f'rig: fx {rig.fx:.1f} px, baseline {rig.baseline:.3f} squares, stereo rms {rig.rms:.3f} px; '
          f'{len(samples)} pairs, plane fit rms {np.mean([s["fit_rms"] for s in samples]):.3f} px, '
          f'rectified vertical offset {np.mean([s["dy"] for s in samples]):.3f} px')
    result = run_check(samples, mono=not args.no_mono, fusion=args.fusion, stereo=not args.mono,
                       mono_models=args.mono)
    print(markdown(result, len(samples)))
    if args.synthetic_boards and not args.no_mono:
        boards = synthetic_boards(args.synthetic_boards)
        result['synthetic_boards'] = {name: score_mono(DepthEstimator(name), boards)[0] for name in result['mono']}
        print('\nThe same protocol on rendered boards (content boards, exact masks):')
        print(markdown({'stereo': {}, 'mono': result['synthetic_boards']}, len(boards)))
    if args.figure:
        from depth_ros.viz import write_image
        write_image(args.figure, figure(samples, result, figure_labels(result, every_mono=bool(args.mono))))
    entries = card_entries(result, samples, rig)
    if args.out:
        scores = {'stereo': result['stereo'], 'mono': result['mono'], 'cards': entries,
                  'synthetic_boards': result.get('synthetic_boards', {})}
        args.out.write_text(json.dumps(scores, indent=2) + '\n')
    if args.update_card and not args.mono:
        from .cli.evaluate import update_card
        for model, entry in entries.items():
            print(f'updated {update_card(model, CARD_KEY, entry)}')


if __name__ == '__main__':
    main()
