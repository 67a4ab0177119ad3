"""Depth geometry in numpy and OpenCV (no ROS, no torch): disparity <-> depth, camera intrinsics
under resizing, back-projection to organized point clouds, warping the right view to the
left, colour packing.

Conventions (ROS REP 103 / REP 118, sensor_msgs/CameraInfo):
- images are (H, W) arrays, pixel (u, v) = (column, row), pixel centres at integer coordinates;
- K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels; the right camera of a rectified pair has
  P[0, 3] = Tx = -fx * B (B = baseline in metres, right camera at +B along x);
- depth Z is metres along the optical axis (z forward, x right, y down); disparity d = fx B / Z
  in pixels; invalid values are NaN (never 0).
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

import cv2
import numpy as np


def _check_focal_baseline(fx: float, baseline: float) -> None:
    if not (np.isfinite(fx) and fx > 0):
        raise ValueError(f'focal length must be a positive number of pixels, got {fx}')
    if not (np.isfinite(baseline) and baseline > 0):
        raise ValueError(f'stereo baseline must be a positive number of metres, got {baseline}')


def disparity_to_depth(disparity: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """Depth (m, float32, same shape) = fx * B / d; NaN where d <= 0 or not finite. The map is
    its own inverse: disparity (px) = ``disparity_to_depth(depth, fx, B)``."""
    _check_focal_baseline(fx, baseline)
    d = np.asarray(disparity, dtype=np.float32)
    with np.errstate(divide='ignore', invalid='ignore'):
        depth = np.float32(fx * baseline) / d
    return mask_invalid(depth)  # d <= 0 gives inf or a negative depth; NaN stays NaN


def baseline_from_projection(p_right: np.ndarray | list[float]) -> float:
    """Baseline (m) from the right camera's 3x4 projection matrix (P[0,3] = -fx * B)."""
    p = np.asarray(p_right, dtype=np.float64).reshape(3, 4)
    fx, tx = p[0, 0], p[0, 3]
    if not (np.isfinite(fx) and fx > 0):
        raise ValueError(f'right camera_info has no valid focal length (P[0]={fx})')
    if not np.isfinite(tx) or tx == 0:
        raise ValueError(f'right camera_info has no baseline: P[3] (Tx = -fx*B) is {tx}; '
                         'is it the rectified right camera of a calibrated pair?')
    return float(-tx / fx)


def scale_intrinsics(k: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """K (3x3) of an image resized by (sx, sy) = (new_w/old_w, new_h/old_h).

    Uses the pixel-centre convention of cv2.resize: c' = (c + 0.5) * s - 0.5.
    """
    k = np.asarray(k, dtype=np.float64).reshape(3, 3).copy()
    k[0, 0] *= sx
    k[1, 1] *= sy
    k[0, 1] *= sx
    k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
    k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
    return k


def scale_projection(p: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """P (3x4) of an image resized by (sx, sy); Tx = -fx*B scales with fx (B unchanged)."""
    p = np.asarray(p, dtype=np.float64).reshape(3, 4).copy()
    p[0, :3] = scale_intrinsics(p[:, :3], sx, sy)[0]
    p[1, :3] = scale_intrinsics(p[:, :3], sx, sy)[1]
    p[0, 3] *= sx
    p[1, 3] *= sy
    return p


def decimate(image: np.ndarray, factor: int) -> np.ndarray:
    """Every ``factor``-th pixel starting at (factor - 1) // 2 in both axes (no mixing of values
    across depth edges); pair with ``decimate_intrinsics``."""
    o = (factor - 1) // 2
    return image[o::factor, o::factor]


def decimate_intrinsics(k: np.ndarray, factor: int) -> np.ndarray:
    """K of ``decimate(image, factor)``: pixel u' samples u = factor * u' + o, so
    f' = f / factor and c' = (c - o) / factor (exact for the sampled pixels)."""
    o = (factor - 1) // 2
    k = np.asarray(k, dtype=np.float64).reshape(3, 3).copy()
    k[:2, :3] /= factor
    k[0, 2] -= o / factor
    k[1, 2] -= o / factor
    return k


def ray_grid(k: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 2) float32 of ((u - cx) / fx, (v - cy) / fy) for every pixel: X = Z * rays."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if not (fx > 0 and fy > 0 and np.isfinite([fx, fy, cx, cy]).all()):
        raise ValueError(f'camera intrinsics are invalid (fx={fx}, fy={fy}, cx={cx}, cy={cy})')
    rays = np.empty((height, width, 2), np.float32)
    rays[..., 0] = ((np.arange(width) - cx) / fx)[None, :]
    rays[..., 1] = ((np.arange(height) - cy) / fy)[:, None]
    return rays


FLOAT32_MAX = float(np.finfo(np.float32).max)


def mask_invalid(values: np.ndarray, low: float = 0.0, high: float = FLOAT32_MAX) -> np.ndarray:
    """The one place values become invalid: set to NaN, in place, every value (depth in m or
    disparity in px, float32) that is not > 0, >= ``low`` and <= ``high`` (NaN and inf
    included). Returns ``values``."""
    with np.errstate(invalid='ignore'):
        valid = (values > 0) & (values >= low) & (values <= min(high, FLOAT32_MAX))
    np.putmask(values, ~valid, np.float32(np.nan))
    return values


def count_outside(values: np.ndarray, low: float, high: float) -> int:
    """How many finite values (not NaN or inf) lie outside [low, high]."""
    with np.errstate(invalid='ignore'):
        return int(np.count_nonzero(np.isfinite(values) & ((values < low) | (values > high))))


class Backprojector:
    """Back-projects depth maps of one camera (3x3 ``k``, ``width`` x ``height`` px) into
    organized clouds, reusing the ray planes and scratch planes between calls: x and y are
    computed into contiguous planes and OpenCV interleaves x, y, z (and extra channels) into
    the output (about 0.25 ms for 640x480 xyz). Not thread-safe (one per thread)."""

    def __init__(self, k: np.ndarray, width: int, height: int) -> None:
        self.k = np.asarray(k, dtype=np.float64).reshape(3, 3).copy()
        self.width, self.height = int(width), int(height)
        rays = ray_grid(self.k, self.width, self.height)
        self._rx, self._ry = np.ascontiguousarray(rays[..., 0]), np.ascontiguousarray(rays[..., 1])
        self._x, self._y = np.empty_like(self._rx), np.empty_like(self._ry)

    def matches(self, k: np.ndarray, width: int, height: int) -> bool:
        """True if this back-projector was built for these intrinsics and size."""
        return (width, height) == (self.width, self.height) and np.array_equal(
            np.asarray(k, dtype=np.float64).reshape(3, 3), self.k)

    def __call__(self, depth: np.ndarray, out: np.ndarray | None = None,
                 extra: Sequence[np.ndarray] = ()) -> np.ndarray:
        """(H, W) depth in m (NaN invalid) -> (H, W, 3) float32 xyz in the optical frame, NaN
        where depth is NaN, followed by the ``extra`` (H, W) float32 planes as channels (e.g.
        ``pack_rgb``'s colour: (H, W, 4) xyz + rgb). ``out``: a preallocated C-contiguous
        float32 array of that shape to write into (returned)."""
        shape = (self.height, self.width, 3 + len(extra))
        if depth.shape != shape[:2] or any(e.shape != shape[:2] for e in extra):
            raise ValueError(f'depth is {depth.shape[1]}x{depth.shape[0]} (extra planes '
                             f'{[e.shape for e in extra]}) but the camera is {self.width}x{self.height}')
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f'out must be a C-contiguous float32 array of shape {shape}, '
                             f'got {out.dtype} {out.shape}')
        depth = np.ascontiguousarray(depth, np.float32)
        np.multiply(depth, self._rx, out=self._x)
        np.multiply(depth, self._ry, out=self._y)
        return cv2.merge([self._x, self._y, depth, *(np.ascontiguousarray(e, np.float32) for e in extra)], dst=out)


def warp_right_to_left(right: np.ndarray, disparity: np.ndarray,
                       interpolation: int = cv2.INTER_LINEAR) -> tuple[np.ndarray, np.ndarray]:
    """The right image resampled at (u - d, v) for every left pixel (one ``cv2.remap``; linear
    along the row by default, or ``cv2.INTER_NEAREST``).

    ``right`` (H, W) or (H, W, C<=4), ``disparity`` (H, W) px of the left view (NaN invalid).
    Returns the reconstruction of the left view (float32, same shape as ``right``; edge values
    where the match is outside) and a mask of pixels whose match lies inside the right image
    (False where the disparity is NaN).
    """
    height, width = disparity.shape
    match = np.arange(width, dtype=np.float32)[None, :] - disparity.astype(np.float32, copy=False)
    with np.errstate(invalid='ignore'):
        inside = (match >= 0.0) & (match <= width - 1.0)
    map_x = np.clip(np.nan_to_num(match), 0.0, width - 1.0)
    map_y = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, 1)
    warped = cv2.remap(right.astype(np.float32, copy=False), map_x, map_y, interpolation,
                       borderMode=cv2.BORDER_REPLICATE)
    return warped, inside


def backproject(depth: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(H, W) depth (m) -> (H, W, 3) float32 organized xyz (NaN where depth is NaN)."""
    h, w = depth.shape
    return Backprojector(k, w, h)(np.asarray(depth, np.float32))


def project(points: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(..., 3) points in the optical frame -> (..., 2) pixel coordinates (u, v)."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    p = np.asarray(points, dtype=np.float64)
    uv = p[..., :2] / p[..., 2:3]
    return np.stack([k[0, 0] * uv[..., 0] + k[0, 1] * uv[..., 1] + k[0, 2],
                     k[1, 1] * uv[..., 1] + k[1, 2]], axis=-1)


def pack_rgb(rgb: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 whose bits are 0x00RRGGBB (the PCL/RViz 'rgb' field).
    ``scratch``: an optional (H, W, 4) uint8 C-contiguous buffer reused between calls; the
    result is then a view on it (valid until the next call)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected (H, W, 3) uint8 RGB, got {rgb.dtype} {rgb.shape}')
    if sys.byteorder != 'little':
        packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
        return packed.view(np.float32)
    bgra = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA, dst=scratch)  # bytes B G R A
    packed = bgra.view(np.uint32)[..., 0]  # little-endian: 0xAARRGGBB
    np.bitwise_and(packed, np.uint32(0x00FFFFFF), out=packed)
    return packed.view(np.float32)


def depth_to_millimetres(depth: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(H, W) depth in m (NaN invalid) -> uint16 millimetres, 0 = invalid or beyond 65.535 m
    (the 16UC1 convention of REP 118 / OpenNI); written into ``out`` (uint16, same shape) if given."""
    mm = np.nan_to_num(np.asarray(depth, np.float32) * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
    mm = np.rint(mm)
    mm[(mm < 0) | (mm > 65535)] = 0
    if out is None:
        return mm.astype(np.uint16)
    np.copyto(out, mm, casting='unsafe')
    return out
