"""Fusion of a stereo network with OpenCV SGBM: SGBM's disparity where SGBM is confident, the
network's elsewhere.

On the held-out synthetic split SGBM is the more precise where it answers (bad-3 3.3 % on its
valid pixels vs AnyNet's 7.4 % there) and the network is dense, so the fused map takes SGBM at a
pixel when (measured by ``bench/fusion.py`` among valid / + left-right / + agreement with the
network / + stricter uniqueness / eroded or blended borders):

- SGBM found a disparity (its own uniqueness and speckle filters passed),
- it is left-right consistent: the right view's disparity, found by matching the mirrored pair,
  maps back to within ``LR_MAX`` px (SGBM's internal 1 px check lets many mismatches through,
  e.g. on the repeating squares of a chessboard),
- the network's disparity lies inside SGBM's searched range (``RANGE_MARGIN`` px below its end):
  beyond it SGBM cannot be right and returns a consistent-looking wrong match.

Requiring agreement with the network (within 1-32 px) gave nothing on bad-3: where both agree
the network is already right; SGBM's value pays where the network is wrong. Blending across the
mask's border and eroding it made every split worse.

The confidence of the fused map is SGBM's left-right consistency where SGBM is taken and the
network's own confidence elsewhere; a pair without stereo information keeps confidence 0
everywhere (the network's check, :func:`depth_ros.inference.confidence.informative`).
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .confidence import LR_SCALE, left_right
from .images import EstimatorError
from .opencv_stereo import OpenCVStereo

log = logging.getLogger('depth_ros')

FUSIONS = ('none', 'sgbm')  # accepted values of StereoEstimator(fusion=...) and the node's parameter
LR_MAX = 1.0        # px: largest left-right difference of a trusted SGBM pixel
RANGE_MARGIN = 4.0  # px: the network's disparity must be this far below SGBM's largest searched one


def trusted(sgbm_conf: np.ndarray, network: np.ndarray, sgbm_max: float) -> np.ndarray:
    """(h, w) bool: pixels where SGBM's disparity is taken. ``sgbm_conf``: SGBM's left-right
    confidence (:func:`~depth_ros.inference.confidence.left_right`, 0 where invalid);
    ``network``: the network's disparity (px, NaN invalid); ``sgbm_max``: SGBM's largest searched
    disparity (px)."""
    with np.errstate(invalid='ignore'):
        return (sgbm_conf >= np.exp(-(LR_MAX / LR_SCALE) ** 2)) & (network <= sgbm_max - RANGE_MARGIN)


def fuse(network: np.ndarray, sgbm: np.ndarray, take: np.ndarray) -> np.ndarray:
    """(h, w) float32: ``sgbm`` where ``take``, ``network`` elsewhere (px, NaN invalid)."""
    return np.where(take, sgbm, network).astype(np.float32, copy=False)


def fused_confidence(network_conf: np.ndarray, sgbm_conf: np.ndarray, take: np.ndarray) -> np.ndarray:
    """(h, w) float32 confidence of the fused map: SGBM's where taken, the network's elsewhere."""
    return np.where(take, sgbm_conf, network_conf).astype(np.float32, copy=False)


class SGBMFusion:
    """SGBM beside a network (``StereoEstimator(..., fusion='sgbm')``): :meth:`start` matches
    both views of a pair (when ``concurrent``, each in a worker thread: SGBM and ONNX Runtime
    release the GIL, so the matchings overlap the network), :meth:`combine` waits and fuses.
    ``params``: stereo_image_proc-style SGBM parameters (see
    :mod:`depth_ros.inference.opencv_stereo`; disparity_range should cover the scene)."""

    def __init__(self, params: dict[str, Any] | None = None, concurrent: bool = True) -> None:
        self.matcher = OpenCVStereo('opencv_sgbm', params)  # the left view's; set_params changes both
        self._right = OpenCVStereo('opencv_sgbm', params)  # its own cv2 object: one must not run in two threads
        self._pool = ThreadPoolExecutor(2, thread_name_prefix='sgbm_fusion') if concurrent else None
        self._skipped_widths: set[int] = set()
        self.take: np.ndarray | None = None      # last call's trusted pixels
        self.sgbm_conf: np.ndarray | None = None  # last call's SGBM left-right confidence

    @property
    def max_disparity(self) -> float:
        """Largest disparity SGBM searches (px at the matching resolution)."""
        return self.matcher.max_disparity

    def _left(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """SGBM disparity of the left view (px, NaN invalid)."""
        disparity = self.matcher.disparity(left, right)
        disparity[disparity < max(self.matcher.min_disparity, 0.0)] = np.nan
        return disparity

    def start(self, left: np.ndarray, right: np.ndarray) -> tuple | None:
        """Begin matching a uint8 pair at network resolution; None when SGBM cannot match images
        this narrow (the network's answer is then used alone; said once per width)."""
        try:
            self.matcher.check_size(left.shape[1], left.shape[0])
        except EstimatorError as e:
            if left.shape[1] not in self._skipped_widths:
                self._skipped_widths.add(left.shape[1])
                log.warning('fusion off for this size: %s', e)
            return None
        if self._right.params != self.matcher.params:
            self._right = OpenCVStereo('opencv_sgbm', self.matcher.params)
        if self._pool is None:
            return self._left(left, right), self._right.right_disparity(left, right)
        return self._pool.submit(self._left, left, right), self._pool.submit(self._right.right_disparity, left, right)

    def combine(self, pending: tuple | None, network: np.ndarray) -> np.ndarray:
        """The fused disparity (px, NaN invalid) of ``network`` (px, NaN invalid) and the pair
        :meth:`start` got."""
        if pending is None:
            self.take, self.sgbm_conf = np.zeros(network.shape, bool), np.zeros(network.shape, np.float32)
            return network
        sgbm, right = (p.result() if isinstance(p, Future) else p for p in pending)
        self.sgbm_conf = left_right(sgbm, right)
        self.take = trusted(self.sgbm_conf, network, self.max_disparity)
        return fuse(network, sgbm, self.take)

    def confidence(self, network_conf: np.ndarray) -> np.ndarray:
        """Confidence of the last fused map from the network's (call only for an informative pair)."""
        if self.take is None:
            return network_conf
        return fused_confidence(network_conf, self.sgbm_conf, self.take)
