"""Fusion of a stereo network with OpenCV SGBM: SGBM's disparity where SGBM is confident, the
network's elsewhere.

On the held-out synthetic split SGBM is the more precise where it answers (bad-3 3.3 % on its
valid pixels vs AnyNet's 7.4 % there) and the network is dense, so the fused map takes SGBM at a
pixel when (measured by ``bench/fusion.py`` among valid / + left-right / + agreement with the
network / + stricter uniqueness / eroded or blended borders):

- SGBM found a disparity (its own uniqueness and speckle filters passed),
- it is left-right consistent: the right view's disparity maps back to within ``LR_MAX`` px
  (SGBM's internal 1 px check lets many mismatches through, e.g. on the repeating squares of a
  chessboard: without this test the board's s3 bad-3 is 18.2 % instead of 11.7 %),
- the network's disparity lies inside SGBM's searched range (``RANGE_MARGIN`` px below its end):
  beyond it SGBM cannot be right and returns a consistent-looking wrong match,
- SGBM's disparity is within a factor ``RATIO`` (+- ``SLACK`` px) of the network's: SGBM refines
  the network's answer but does not overrule it by more (in far, weakly textured scenes SGBM finds
  left-right consistent matches at 4x the true disparity: phantom obstacles at a quarter of the
  distance; a 640x480 render with 3 px of disparity went from 20.1 % bad-3 for the network to
  25.7 % fused without this test, 20.2 % with it).

The right view is matched at half resolution (:func:`half_params`: half the disparities, a 3 px
window, on the mirrored pair), an eighth of the full-resolution matching's work (measured at
640x480, one thread: 14 ms instead of 80 ms), so ``LR_MAX`` is 1.5 px (its values are coarser).
Against the full-resolution right view within 1 px this moved bad-3 by -0.1 / +0.1 / -1.6
points and bad-1 by +0.2 / +0.5 / -1.6 on the basic renders / photo + rich renders / real board
(s4; s3 alike). By default (``scale`` 0.5) the left view is matched at half resolution too, with
the same half-size matcher, and both disparities are upsampled (nearest, values doubled): a
third of the full-size left matching's cost, and on the same three sets s4's fused bad-3 moved
by +0.5 / +0.0 / -3.0 points (8.5 / 12.0 / 10.4 %), bad-1 by +1.5 / +1.1 / -4.3 (before the
ratio test below; linear upsampling of the valid values scored within 0.4 points of nearest,
which is simpler). Measured and dropped (``bench/fusion.py --right``): StereoBM for the right view
(9 or 15 px window: 34 ms, fewer pixels pass, bad-3 +0.7 to +5.1 points), a grey right view
(58 ms, +0.1 to +0.3), HH4 (193 ms, no gain), a 5 px window at half size (bad-3 +0.2 on the renders).

Requiring agreement with the network within 1-32 px gave nothing on bad-3: where both agree the
network is already right; SGBM's value pays where the network is wrong. The relative test above
costs some of the mean (s4 fused bad-3 on basic renders / photo + rich renders / real board 8.5 /
12.0 / 10.4 % without it, 8.3 / 12.9 / 13.7 % with it; factor 2: 8.4 / 12.5 / 12.2 % but four
basic pairs up to 8.8 points worse than the network alone) and leaves no set where fusion makes a
pair more than 3 points worse than the network (16 random 640x480 scenes: at most +0.2). Blending across the
mask's border and eroding it made every split worse.

The confidence of the fused map is SGBM's left-right consistency where SGBM is taken and the
network's own confidence elsewhere; a pair without stereo information keeps confidence 0
everywhere (the network's check, :func:`depth_ros.inference.confidence.informative`).

With a deadline (the node's ``latency_budget_ms``) the matchings are used only when they end in
time: :meth:`SGBMFusion.start` skips them when their smoothed duration would end after it (the
estimator passes the deadline less the network's stage 1, since beside the network both compete
for the cores), and :meth:`SGBMFusion.combine` waits for them no longer than it; ``fused`` says
which frames were. Matchings that miss their deadline run on beside the next frames' network, so
fusion then sits out 1, 2, 4, ... frames (consecutive misses; at most ``MAX_PAUSE``): under a
budget the frame rate comes first.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from .confidence import LR_SCALE, left_right
from .images import EstimatorError
from .opencv_stereo import OpenCVStereo

log = logging.getLogger('depth_ros')

FUSIONS = ('none', 'sgbm')  # accepted values of StereoEstimator(fusion=...) and the node's parameter
SCALES = (0.5, 1.0)         # resolutions SGBM can match the left view at (fusion_scale)
LR_MAX = 1.5        # px: largest left-right difference of a trusted SGBM pixel (right view at half resolution)
RANGE_MARGIN = 4.0  # px: the network's disparity must be this far below SGBM's largest searched one
RATIO, SLACK = 1.5, 2.0  # SGBM's disparity must lie in [network / RATIO - SLACK, network * RATIO + SLACK] px
HALF_WINDOW = 3     # px: smallest window of the half-resolution right matching
Pending = Future | tuple[np.ndarray, np.ndarray] | None  # start -> combine: the worker's job, the pair or nothing


def half_params(params: dict[str, Any]) -> dict[str, Any]:
    """SGBM parameters for the right view at half resolution from the left's: half the disparities
    (a multiple of 16, rounded up), min_disparity halved, about half the window (odd, at least
    ``HALF_WINDOW``), explicit P1 / P2 scaled with the window's area."""
    w = params['correlation_window_size']
    half_w = max(HALF_WINDOW, (w // 2) | 1)
    area = (half_w / w) ** 2
    return dict(params, disparity_range=16 * -(-params['disparity_range'] // 32),
                min_disparity=params['min_disparity'] // 2, correlation_window_size=half_w,
                P1=params['P1'] * area, P2=params['P2'] * area)


def trusted(sgbm: np.ndarray, sgbm_conf: np.ndarray, network: np.ndarray, sgbm_max: float) -> np.ndarray:
    """(h, w) bool: pixels where SGBM's disparity is taken. ``sgbm``: its disparity (px, NaN
    invalid); ``sgbm_conf``: its left-right confidence
    (:func:`~depth_ros.inference.confidence.left_right`, 0 where invalid); ``network``: the
    network's disparity (px, NaN invalid); ``sgbm_max``: SGBM's largest searched disparity (px)."""
    with np.errstate(invalid='ignore'):
        near = (sgbm <= RATIO * network + SLACK) & (sgbm >= network / RATIO - SLACK)
        return (sgbm_conf >= np.exp(-(LR_MAX / LR_SCALE) ** 2)) & (network <= sgbm_max - RANGE_MARGIN) & near


def fuse(network: np.ndarray, sgbm: np.ndarray, take: np.ndarray) -> np.ndarray:
    """(h, w) float32: ``sgbm`` where ``take``, ``network`` elsewhere (px, NaN invalid)."""
    return np.where(take, sgbm, network).astype(np.float32, copy=False)


def fused_confidence(network_conf: np.ndarray, sgbm_conf: np.ndarray, take: np.ndarray) -> np.ndarray:
    """(h, w) float32 confidence of the fused map: SGBM's where taken, the network's elsewhere."""
    return np.where(take, sgbm_conf, network_conf).astype(np.float32, copy=False)


class SGBMFusion:
    """SGBM beside a network (``StereoEstimator(..., fusion='sgbm')``): :meth:`start` begins the
    matchings of a pair (when ``concurrent`` in a worker thread, beside the network: SGBM and ONNX
    Runtime release the GIL), :meth:`combine` fuses them with the network's answer. ``params``:
    stereo_image_proc-style SGBM parameters of a full-size matching (see
    :mod:`depth_ros.inference.opencv_stereo`; disparity_range should cover the scene). ``scale``:
    the left view is matched at half size (0.5, the default) or at full size (1.0, three times the
    cost); the right view always at half size."""
    SMOOTHING = 0.2  # weight of the newest duration in ``seconds``
    DECAY = 0.9      # factor on ``seconds`` per frame skipped for a deadline, so fusion is tried again
    MAX_PAUSE = 16   # frames with a deadline fusion sits out after its matchings missed one (1, 2, 4, ... in a row)

    def __init__(self, params: dict[str, Any] | None = None, concurrent: bool = True, scale: float = 0.5) -> None:
        if scale not in SCALES:
            raise EstimatorError(f'fusion_scale must be one of {", ".join(map(str, SCALES))}, got {scale!r}')
        self.scale = float(scale)
        self.matcher = OpenCVStereo('opencv_sgbm', params)  # the parameters (full size); set_params changes both
        self._half = OpenCVStereo('opencv_sgbm', half_params(self.matcher.params))  # the half-size matchings
        self._pool = ThreadPoolExecutor(1, thread_name_prefix='sgbm_fusion') if concurrent else None
        self._running: Future | None = None
        self._skipped_widths: set[int] = set()
        self._misses = 0  # pairs in a row whose matchings ended after their deadline
        self._pause = 0   # frames with a deadline still to sit out: late matchings take the cores from the network
        self.seconds = 0.0  # smoothed duration of a pair's matchings (s; 0 before the first)
        self.fused = False  # whether the last combine took SGBM's matchings
        self.take: np.ndarray | None = None      # last call's trusted pixels
        self.sgbm_conf: np.ndarray | None = None  # last call's SGBM left-right confidence

    @property
    def max_disparity(self) -> float:
        """Largest disparity SGBM searches for the left view (px at full size)."""
        return self.matcher.max_disparity if self.scale == 1.0 else 2.0 * self._half.max_disparity

    def _match(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SGBM disparity of the left view (matched at half or full size: ``scale``) and, matched
        at half size, of the right view (px at full size, NaN invalid); updates ``seconds``."""
        t0 = time.monotonic()
        h, w = left.shape[:2]
        half = (max(1, w // 2), max(1, h // 2))
        small = [cv2.resize(img, half, interpolation=cv2.INTER_AREA) for img in (left, right)]

        def full_size(disparity: np.ndarray) -> np.ndarray:  # half-size disparity -> full size, px
            up = cv2.resize(disparity, (w, h), interpolation=cv2.INTER_NEAREST)
            up *= np.float32(w / half[0])
            return up

        if self.scale == 1.0:
            disparity = self.matcher.disparity(left, right)
            disparity[disparity < max(self.matcher.min_disparity, 0.0)] = np.nan
        else:
            low = self._half.disparity(*small)
            low[low < max(self._half.min_disparity, 0.0)] = np.nan
            disparity = full_size(low)
        right_view = full_size(self._half.right_disparity(*small))
        took = time.monotonic() - t0
        self.seconds = took if not self.seconds else self.seconds + self.SMOOTHING * (took - self.seconds)
        return disparity, right_view

    def _in_time(self, deadline: float | None) -> bool:
        """Whether the matchings, started now, would end by ``deadline`` (time.monotonic() s)."""
        if deadline is None or time.monotonic() + self.seconds <= deadline:
            return True
        self.seconds *= self.DECAY
        return False

    def start(self, left: np.ndarray, right: np.ndarray, deadline: float | None = None) -> Pending:
        """Begin matching a uint8 pair at network resolution; None when SGBM cannot match images
        this narrow (said once per width), when the last pair's matchings still run, or
        (concurrent) when they would not end by ``deadline`` or, with a deadline, for 1, 2, 4, ...
        (at most ``MAX_PAUSE``) frames after matchings in a row ended after theirs: the network's
        answer is used alone."""
        if self._running is not None and not self._running.done():
            return None  # a worker still matches a pair that missed its deadline
        if deadline is not None and self._pause:
            self._pause -= 1
            return None
        if self._half.params != half_params(self.matcher.params):
            self._half = OpenCVStereo('opencv_sgbm', half_params(self.matcher.params))
        try:
            self.matcher.check_size(left.shape[1], left.shape[0])
            self._half.check_size(max(1, left.shape[1] // 2), max(1, left.shape[0] // 2))
        except EstimatorError as e:
            if left.shape[1] not in self._skipped_widths:
                self._skipped_widths.add(left.shape[1])
                log.warning('fusion off for this size: %s', e)
            return None
        if self._pool is None:
            return left, right  # matched in combine, after the network
        if not self._in_time(deadline):
            return None
        self._running = self._pool.submit(self._match, left, right)
        return self._running

    def combine(self, pending: Pending, network: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """The fused disparity (px, NaN invalid) of ``network`` (px, NaN invalid) and the pair
        :meth:`start` got, or ``network`` when the matchings do not end by ``deadline``
        (time.monotonic() s; never waited for past it)."""
        matched = None
        if isinstance(pending, Future):
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                matched = pending.result(timeout)
                self._misses = 0
            except TimeoutError:  # the matchings run on, beside the next frames' network: pause fusion
                self._misses += 1
                self._pause = min(2 ** (self._misses - 1), self.MAX_PAUSE)
        elif pending is not None and self._in_time(deadline):
            matched = self._match(*pending)
        self.fused = matched is not None
        if matched is None:
            self.take, self.sgbm_conf = np.zeros(network.shape, bool), np.zeros(network.shape, np.float32)
            return network
        sgbm, right = matched
        self.sgbm_conf = left_right(sgbm, right)
        self.take = trusted(sgbm, self.sgbm_conf, network, self.max_disparity)
        return fuse(network, sgbm, self.take)

    def confidence(self, network_conf: np.ndarray) -> np.ndarray:
        """Confidence of the last fused map from the network's (call only for an informative pair)."""
        if self.take is None:
            return network_conf
        return fused_confidence(network_conf, self.sgbm_conf, self.take)
