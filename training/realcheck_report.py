"""The real-camera check's report: markdown tables, the figure and the model-card entries of the
scores that ``realcheck.run_check`` returns (see ``realcheck`` for the protocol)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

import cv2
import numpy as np

from depth_ros.metrics import align
from depth_ros.model_card import DEFAULT_MONO, DEFAULT_STEREO

if TYPE_CHECKING:
    from .realcheck import Rig, Sample


def markdown(result: dict[str, Any], n: int) -> str:
    """The stereo and mono tables (GitHub markdown), each where ``result`` has scores."""
    lines = [f'Stereo, {n} rectified pairs, board region (holes count as bad); '
             'photometric error on the whole image:', '',
             '| method | bad-1 % | bad-3 % | EPE px | density % | photo L1 | photo density % |',
             '|---|---:|---:|---:|---:|---:|---:|'] if result['stereo'] else []
    for label, m in result['stereo'].items():
        lines.append(f"| {label} | {100 * m['bad1']:.1f} | {100 * m['bad3']:.1f} | {m['epe']:.2f} | "
                     f"{100 * m['density']:.1f} | {m['photo_l1']:.3f} | {100 * m['photo_density']:.1f} |")
    if result['mono']:
        caption = (f'Mono, {n} images, board region: AbsRel after median scaling (constant map as baseline), '
                   'scale-and-shift-invariant disparity AbsRel ("lower rows are nearer" prior as baseline), and '
                   "the board's tilt: cosine to the true tilt's direction, its size over the true one's:")
        lines += [''] * bool(lines) + [caption, '',
                  '| model | AbsRel median-scaled | constant map | SSI disparity AbsRel | rows prior '
                  '| slant cos | slant gain |',
                  '|---|---:|---:|---:|---:|---:|---:|']
        for name, m in result['mono'].items():
            lines.append(f"| {name} | {m['absrel_median']:.3f} | {m['const_absrel']:.3f} | "
                         f"{m['ssi_absrel']:.3f} | {m['rows_ssi_absrel']:.3f} | "
                         f"{m['slant_cos']:.2f} | {m['slant_gain']:.2f} |")
    return '\n'.join(lines)


def figure(samples: list[Sample], result: dict[str, Any], labels: Sequence[str], count: int = 2) -> np.ndarray:
    """Rows of (left with the board outlined, ground truth, each labelled prediction) as disparity
    colour maps on the ground truth's range; mono rows show the prediction's scale-and-shift-aligned disparity."""
    from depth_ros.viz import colorize_depth, tile

    panels = []
    for i, s in enumerate(samples[:count]):
        lo, hi = float(np.nanmin(s['disparity'])) - 10.0, float(np.nanmax(s['disparity'])) + 10.0
        left = s['left'].copy()
        contours, _ = cv2.findContours(s['board'].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(left, contours, -1, (255, 80, 0), 2)
        panels += [(f"{s['name']} (rectified, board)", left),
                   ('ground truth disparity', colorize_depth(s['disparity'], lo, hi))]
        for label in labels:
            pred = result['predictions'][label][i]
            if label in result['mono']:
                with np.errstate(divide='ignore', invalid='ignore'):
                    pred = align(1.0 / pred, s['disparity'], mode='lsq_shift')
            panels.append((label, colorize_depth(pred, lo, hi)))
    return tile(panels, columns=2 + len(labels), cell=(256, 192),
                title='real-camera check (OpenCV stereo sample): disparity, px')


def figure_labels(result: dict[str, Any], every_mono: bool) -> list[str]:
    """The figure's prediction panels: SGBM, the stereo node's default network (all its stages) alone and
    fused with SGBM (the node's default), then every mono model scored (``every_mono``) or the mono node's."""
    own = [lb for lb in result['stereo'] if re.fullmatch(rf'{DEFAULT_STEREO} s\d', lb)]
    best = [max(own)] if own else []
    fused = [lb + ' + sgbm' for lb in best if lb + ' + sgbm' in result['stereo']]
    if every_mono:
        mono = list(result['mono'])
    else:
        mono = [DEFAULT_MONO] if DEFAULT_MONO in result['mono'] else list(result['mono'])[:1]
    return ['opencv_sgbm'] * bool(result['stereo']) + best + fused + mono


def card_entries(result: dict[str, Any], samples: list[Sample], rig: Rig) -> dict[str, dict[str, Any]]:
    """Card metrics per shipped model under CARD_KEY: its default configuration (most stages, full size)
    with per-stage and half-size figures, SGBM's and (mono) the trivial baselines beside them."""
    about = {'n': len(samples), 'rig': {'fx': rig.fx, 'baseline_squares': rig.baseline, 'rms': rig.rms},
             'gt_fit_rms': float(np.mean([s['fit_rms'] for s in samples]))}
    entries: dict[str, dict[str, Any]] = {}
    for label, (model, kwargs) in result['models'].items():
        if model.startswith('opencv_') or kwargs.get('fusion') or 'spn_limit' in kwargs:  # the network alone, as carded
            continue
        entry = entries.setdefault(model, dict(about))
        if model in result['mono']:
            entry['metrics'] = result['mono'][model]
            continue
        scale = kwargs['input_scale']
        stages = entry.setdefault('stages' if scale == 1.0 else f'stages@{scale:g}', {})
        stages[str(kwargs['stages'])] = result['stereo'][label]
        entry['metrics'] = stages[max(stages, key=int)] if scale == 1.0 else entry.get('metrics')
        entry['opencv_sgbm'] = result['stereo']['opencv_sgbm']
    return entries
