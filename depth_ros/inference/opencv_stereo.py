"""OpenCV stereo matchers (StereoSGBM, StereoBM) with stereo_image_proc-style parameters.

Parameter names are those of stereo_image_proc's disparity node; values are validated here so a
bad one fails with a clear message instead of an OpenCV assertion:

================================ ================================================================
correlation_window_size          matching window (px, odd): SGBM 1-255 (3-11 is usual), BM 5-255
min_disparity                    first disparity searched (px, may be negative), -2048..2048
disparity_range                  number of disparities searched (px, multiple of 16), 16..4096
uniqueness_ratio                 % margin of the best match over the next best, 0..100
texture_threshold                (BM) minimum window texture, 0..10000
speckle_size                     speckles (connected regions) smaller than this (px) are
                                 removed, 0..1000 (0: off)
speckle_range                    max disparity variation inside a speckle region (px), 0..31
                                 (OpenCV's BM counts in 1/16 px: converted here)
disp12_max_diff                  max left-right consistency difference (px), -1..128 (-1: off
                                 for BM; SGBM always checks with at least 1)
P1, P2                           (SGBM) smoothness penalties, 0..100000; 0 = the usual
                                 8*cn*w^2 and 32*cn*w^2 (cn channels, w window); P2 > P1
prefilter_cap                    clip of the prefiltered image, 1..63
prefilter_size                   (BM) normalization window (px, odd), 5..255
sgbm_mode                        (SGBM) 'sgbm_3way' (default, fastest), 'sgbm' (5 paths),
                                 'hh' (8 paths, full DP), 'hh4'
full_dp                          (SGBM) stereo_image_proc's switch: True = 'hh', False = 'sgbm_3way'
================================ ================================================================

Parameters that only one method uses are accepted (and ignored) by the other, so a node can pass
its whole parameter set to either.
"""
from __future__ import annotations

from numbers import Real
from typing import Any

import cv2
import numpy as np

from .images import EstimatorError, to_grey

METHODS = ('opencv_sgbm', 'opencv_bm')
SGBM_MODES = {'sgbm': cv2.STEREO_SGBM_MODE_SGBM, 'hh': cv2.STEREO_SGBM_MODE_HH,
              'sgbm_3way': cv2.STEREO_SGBM_MODE_SGBM_3WAY, 'hh4': cv2.STEREO_SGBM_MODE_HH4}
DISP_SCALE = 16  # OpenCV's fixed-point disparity: 16 units per pixel

# name: (low, high, odd, multiple) integer ranges; uniqueness_ratio, P1, P2 may be fractional
RANGES: dict[str, tuple[int, int, bool, int]] = {
    # the search (both matchers)
    'correlation_window_size': (1, 255, True, 1),
    'min_disparity': (-2048, 2048, False, 1),
    'disparity_range': (16, 4096, False, 16),
    # filtering of the matches (both matchers)
    'uniqueness_ratio': (0, 100, False, 1),
    'speckle_size': (0, 1000, False, 1),
    'speckle_range': (0, 31, False, 1),
    'disp12_max_diff': (-1, 128, False, 1),
    'prefilter_cap': (1, 63, False, 1),
    # SGBM's smoothness penalties
    'P1': (0, 100000, False, 1),
    'P2': (0, 100000, False, 1),
    # BM only
    'texture_threshold': (0, 10000, False, 1),
    'prefilter_size': (5, 255, True, 1),
}
FRACTIONAL = ('uniqueness_ratio', 'P1', 'P2')

DEFAULTS: dict[str, dict[str, Any]] = {
    'opencv_sgbm': dict(correlation_window_size=5, min_disparity=0, disparity_range=128, uniqueness_ratio=10,
                        texture_threshold=10, speckle_size=100, speckle_range=2, disp12_max_diff=1, P1=0, P2=0,
                        prefilter_cap=63, prefilter_size=9, sgbm_mode='sgbm_3way'),
    'opencv_bm': dict(correlation_window_size=15, min_disparity=0, disparity_range=128, uniqueness_ratio=15,
                      texture_threshold=10, speckle_size=100, speckle_range=2, disp12_max_diff=1, P1=0, P2=0,
                      prefilter_cap=31, prefilter_size=9, sgbm_mode='sgbm_3way'),
}


def _check_number(name: str, value: Any) -> int | float:
    low, high, odd, multiple = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise EstimatorError(f'stereo parameter {name} must be a number, got {value!r}')
    if name not in FRACTIONAL:
        if value != int(value):
            raise EstimatorError(f'stereo parameter {name} must be an integer, got {value!r}')
        value = int(value)
    if not low <= value <= high:
        raise EstimatorError(f'stereo parameter {name}={value} is out of range [{low}, {high}]')
    if odd and value % 2 != 1:
        raise EstimatorError(f'stereo parameter {name}={value} must be odd')
    if value % multiple:
        raise EstimatorError(f'stereo parameter {name}={value} must be a multiple of {multiple}')
    return value


def validate(method: str, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """New full parameter set of ``method`` after applying ``changes`` to ``current``."""
    params = dict(current)
    changes = dict(changes)
    full_dp = changes.pop('full_dp', None)
    if full_dp is not None:
        if not isinstance(full_dp, (bool, np.bool_)):
            raise EstimatorError(f'stereo parameter full_dp must be true or false, got {full_dp!r}')
        mode = 'hh' if full_dp else 'sgbm_3way'
        if changes.get('sgbm_mode', mode) != mode:
            raise EstimatorError(f'full_dp={full_dp} contradicts sgbm_mode={changes["sgbm_mode"]!r}')
        changes['sgbm_mode'] = mode
    unknown = sorted(set(changes) - set(params))
    if unknown:
        raise EstimatorError(f'unknown stereo parameter(s) {", ".join(unknown)}; accepted: '
                             f'{", ".join(sorted(set(params) | {"full_dp"}))}')
    for name, value in changes.items():
        if name == 'sgbm_mode':
            if value not in SGBM_MODES:
                raise EstimatorError(f'sgbm_mode must be one of {", ".join(SGBM_MODES)}, got {value!r}')
            params[name] = value
        else:
            params[name] = _check_number(name, value)
    if method == 'opencv_bm' and params['correlation_window_size'] < 5:
        raise EstimatorError(f'correlation_window_size={params["correlation_window_size"]} is too small for '
                             'StereoBM (at least 5)')
    if params['P1'] and params['P2'] and params['P2'] <= params['P1']:
        raise EstimatorError(f'P2 ({params["P2"]}) must be larger than P1 ({params["P1"]})')
    return params


class OpenCVStereo:
    """One OpenCV matcher with validated parameters; computes float disparity (px, NaN invalid).

    SGBM matches colour images as colour (the costs sum over channels) and grey as grey; BM
    always matches grey. Runs at any image size (the size-mapping attributes of a network).
    """
    fixed_size = None
    multiple_of = 1
    output_scale = 1.0

    def __init__(self, method: str, params: dict[str, Any] | None = None) -> None:
        if method not in METHODS:
            raise EstimatorError(f'unknown OpenCV stereo method {method!r}; accepted: {", ".join(METHODS)}')
        self.method = method
        self.params = validate(method, DEFAULTS[method], params or {})
        self._matchers: dict[int, cv2.StereoMatcher] = {}

    def set_params(self, **changes: Any) -> None:
        """Change parameters at run time (validated as a whole before anything changes)."""
        self.params = validate(self.method, self.params, changes)
        self._matchers.clear()

    @property
    def min_disparity(self) -> float:
        """Smallest disparity searched (px at the matcher's resolution)."""
        return float(self.params['min_disparity'])

    @property
    def max_disparity(self) -> float:
        """Largest disparity searched (px at the matcher's resolution)."""
        return float(self.params['min_disparity'] + self.params['disparity_range'] - 1)

    def _matcher(self, cn: int) -> cv2.StereoMatcher:
        """The matcher for images with ``cn`` channels (SGBM's default penalties depend on it)."""
        if cn in self._matchers:
            return self._matchers[cn]
        p = self.params
        w = p['correlation_window_size']
        if self.method == 'opencv_bm':
            m = cv2.StereoBM.create(numDisparities=p['disparity_range'], blockSize=w)
            m.setPreFilterSize(p['prefilter_size'])
            m.setTextureThreshold(p['texture_threshold'])
            m.setSpeckleRange(p['speckle_range'] * DISP_SCALE)  # BM filters its fixed-point output
        else:
            p1 = p['P1'] or 8 * cn * w * w
            p2 = p['P2'] or 32 * cn * w * w
            if p2 <= p1:
                raise EstimatorError(f'P2 ({p2}) must be larger than P1 ({p1}) (0 = the default {32 * cn * w * w})')
            m = cv2.StereoSGBM.create(minDisparity=p['min_disparity'], numDisparities=p['disparity_range'],
                                      blockSize=w, P1=int(round(p1)), P2=int(round(p2)),
                                      mode=SGBM_MODES[p['sgbm_mode']])
            m.setSpeckleRange(p['speckle_range'])  # SGBM multiplies by 16 itself
        m.setMinDisparity(p['min_disparity'])
        m.setUniquenessRatio(int(round(p['uniqueness_ratio'])))
        m.setSpeckleWindowSize(p['speckle_size'])
        m.setDisp12MaxDiff(p['disp12_max_diff'])
        m.setPreFilterCap(p['prefilter_cap'])
        self._matchers[cn] = m
        return m

    def check_size(self, width: int, height: int) -> None:
        """Raise EstimatorError for images OpenCV cannot match: not larger than the BM window, or (SGBM)
        narrower than |min_disparity| + disparity_range + window, where OpenCV 5.0 fails or crashes."""
        p = self.params
        w = p['correlation_window_size']
        if self.method == 'opencv_bm' and min(width, height) <= w:
            raise EstimatorError(f'image {width}x{height} is too small for the StereoBM window {w} (needs more than '
                                 f'{w} px each way)')
        need = abs(p['min_disparity']) + p['disparity_range'] + w
        if self.method == 'opencv_sgbm' and width < need:
            raise EstimatorError(f'image {width} px wide (at the matching resolution) is too narrow for StereoSGBM '
                                 f'with min_disparity {p["min_disparity"]}, disparity_range {p["disparity_range"]} and '
                                 f'window {w}: it needs {need} px; lower disparity_range or raise input_scale')

    def disparity(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """uint8 (H, W[, 3]) rectified pair -> (H, W) float32 disparity (px); where the matcher found
        none the value is below ``min_disparity`` (OpenCV's marker)."""
        if self.method == 'opencv_bm':
            left, right = to_grey(left), to_grey(right)
        self.check_size(left.shape[1], left.shape[0])
        disparity = self._matcher(1 if left.ndim == 2 else left.shape[2]).compute(left, right).astype(np.float32)
        disparity *= np.float32(1.0 / DISP_SCALE)
        return disparity

    def right_disparity(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Disparity (px, >= 0, NaN invalid) of the right image of the pair, by matching the
        mirrored pair (for left-right checks); min_disparity is taken as 0."""
        if self.method == 'opencv_bm':
            left, right = to_grey(left), to_grey(right)
        pad = int(self.max_disparity) + 1  # OpenCV leaves the first max_disparity columns unmatched
        mirrored = [cv2.copyMakeBorder(np.ascontiguousarray(img[:, ::-1]), 0, 0, pad, 0, cv2.BORDER_REPLICATE)
                    for img in (right, left)]
        flipped = self._matcher(1 if left.ndim == 2 else left.shape[2]).compute(*mirrored)
        disparity = flipped[:, :pad - 1:-1].astype(np.float32) * np.float32(1.0 / DISP_SCALE)
        disparity[disparity < max(self.min_disparity, 0.0)] = np.nan
        return disparity
