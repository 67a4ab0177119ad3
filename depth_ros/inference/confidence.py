"""Per-pixel confidence (0..1) of a disparity map, from what the images and the matcher can say.

- ``photometric``: zero-mean normalized cross-correlation (ZNCC) of the left image and the
  right image warped to it by the disparity (``geometry.warp_right_to_left``), over a small
  window, gated by the left image's local contrast: a pair without texture (covered lens,
  blank wall, dead camera) or with unrelated views scores ~0 whatever a network answers;
- ``stage_agreement``: how far an anytime network's last stage moved from its first (px);
- ``left_right``: consistency of left and right disparity maps (OpenCV matchers; for a network
  it would need a second run on the mirrored pair).

Bench ``bench/confidence.py`` measures how well each separates good from bad pixels
(sparsification AUC) on rendered pairs; :func:`network_confidence` and
:func:`matcher_confidence` are what the estimators use.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..geometry import warp_right_to_left

WINDOW = 9          # px, side of the ZNCC / contrast window at network resolution
MIN_CONTRAST = 4.0  # grey levels (0..255): local standard deviation under which nothing is matched
STAGE_SCALE = 2.0   # px: stage disagreement at which stage_agreement is 1/e
LR_SCALE = 1.0      # px: left-right difference at which left_right is 1/e
MIN_TEXTURED = 0.02  # share of the image with contrast under which a pair is uninformative
MIN_ZNCC = 0.3       # median ZNCC (textured pixels) under which the views are taken as unrelated


def _box(image: np.ndarray) -> np.ndarray:
    return cv2.boxFilter(image, cv2.CV_32F, (WINDOW, WINDOW), borderType=cv2.BORDER_REFLECT)


def _moments(left: np.ndarray, warped: np.ndarray | None = None):
    lf = left.astype(np.float32)
    mean_l = _box(lf)
    var_l = np.maximum(_box(lf * lf) - mean_l * mean_l, 0.0)
    if warped is None:
        return var_l, None
    mean_r = _box(warped)
    var_r = np.maximum(_box(warped * warped) - mean_r * mean_r, 0.0)
    return var_l, (_box(lf * warped) - mean_l * mean_r) / np.sqrt(var_l * var_r + 1e-6)


def contrast_gate(var_l: np.ndarray) -> np.ndarray:
    """0 where the local std (from the variance, grey levels^2) is below MIN_CONTRAST, ramping to 1 at twice it."""
    return np.clip(np.sqrt(var_l) / MIN_CONTRAST - 1.0, 0.0, 1.0)


def photometric(left: np.ndarray, right: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """(h, w) confidence in [0, 1]: ZNCC of left and warped right grey images (uint8 (h, w)) in a
    WINDOW x WINDOW window, clipped at 0, times the contrast gate. 0 where the warp leaves the image."""
    warped, inside = warp_right_to_left(right, disparity)
    outside = ~inside
    warped[outside] = 0.0
    var_l, zncc = _moments(left, warped)
    conf = np.clip(zncc, 0.0, 1.0) * contrast_gate(var_l)
    conf[outside] = 0.0
    return conf


def informative(left: np.ndarray, right: np.ndarray, disparity: np.ndarray) -> tuple[bool, str]:
    """Whether a pair carries stereo information, and why not: at least MIN_TEXTURED of the left
    image has contrast, and there the views match at the disparity (median ZNCC >= MIN_ZNCC).
    Decided at half resolution (a quarter of the work)."""
    half = (max(1, left.shape[1] // 2), max(1, left.shape[0] // 2))  # (w, h); a 1 px side stays 1 px
    left, right = (cv2.resize(img, half, interpolation=cv2.INTER_AREA) for img in (left, right))
    disparity = cv2.resize(disparity, (left.shape[1], left.shape[0]), interpolation=cv2.INTER_NEAREST) * 0.5
    warped, inside = warp_right_to_left(right, disparity)
    warped[~inside] = 0.0
    var_l, zncc = _moments(left, warped)
    textured = contrast_gate(var_l) > 0
    share = float(textured.mean())
    if share < MIN_TEXTURED:
        return False, f'{100 * share:.1f} % of the left image has texture (covered lens, dead camera, blank view?)'
    matched = textured & inside  # pixels without a disparity or matched outside say nothing
    if matched.mean() < MIN_TEXTURED:
        return False, 'no disparity on the textured pixels'
    median = float(np.median(zncc[matched]))
    if median < MIN_ZNCC:
        return False, f'the views do not match (median ZNCC {median:.2f}: unrelated or unsynchronized images?)'
    return True, ''


def stage_agreement(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """(h, w) exp(-|last - first| / STAGE_SCALE): 1 where refinement left stage 1 alone."""
    return np.exp(-np.abs(np.nan_to_num(last - first, nan=1e3)) / STAGE_SCALE).astype(np.float32, copy=False)


def left_right(disp_left: np.ndarray, disp_right: np.ndarray) -> np.ndarray:
    """(h, w) exp(-(|dL(x) - dR(x - dL(x))| / LR_SCALE)^2) of left and right disparity maps (px,
    NaN invalid; the right map holds positive disparities of the right image)."""
    back, inside = warp_right_to_left(np.nan_to_num(disp_right, nan=-1e3), disp_left, cv2.INTER_NEAREST)
    diff = np.abs(disp_left - back)
    conf = np.exp(-np.square(diff / LR_SCALE))
    conf[~(inside & (back >= 0))] = 0.0
    return conf.astype(np.float32, copy=False)


def network_confidence(left: np.ndarray, right: np.ndarray, stages: list[np.ndarray]) -> tuple[np.ndarray, str]:
    """Confidence of a network's last stage (grey uint8 images): the agreement of its first and
    last stage (anytime networks; the best separating cheap measure, see bench/confidence.py;
    1 after stage 1 alone), 0 where invalid; all 0 when the pair is not :func:`informative`. Also returns why
    not ('' when informative)."""
    ok, why = informative(left, right, stages[-1])
    if not ok:
        return np.zeros(left.shape, np.float32), why
    if len(stages) > 1:
        conf = stage_agreement(stages[0], stages[-1])
    else:
        conf = np.isfinite(stages[0]).astype(np.float32)
    return conf, ''


def matcher_confidence(left: np.ndarray, right: np.ndarray, disp_left: np.ndarray, disp_right: np.ndarray,
                       check: bool = True) -> tuple[np.ndarray, str]:
    """Confidence of an OpenCV matcher: left-right consistency (its uniqueness test already
    invalidated ambiguous pixels; OpenCV exposes no cost margin); all 0 when the pair is not
    :func:`informative`; without ``check`` 1 where valid. Also returns why not ('' when informative)."""
    ok, why = informative(left, right, disp_left)
    if not ok:
        return np.zeros(left.shape, np.float32), why
    return left_right(disp_left, disp_right) if check else np.isfinite(disp_left).astype(np.float32), ''
