"""Conversions between numpy arrays and sensor_msgs / stereo_msgs messages.

cv_bridge is used for Image -> array when it is importable (a ROS 2 distribution has it); the
fallback here is vectorized and covers the encodings depth_ros supports (``ENCODINGS``).
Message data is always filled through ``array.array('B').frombytes``: handing rclpy a numpy
array or memoryview directly makes its setter iterate per byte (50-250 ms per frame). Messages
are made with ``KEEP_DATA``, so their data setter keeps that array instead of copying it again,
and ``DataBuffer`` lets a node fill the same data from frame to frame without any copy.
"""
from __future__ import annotations

import array
import sys
from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from . import geometry

try:  # ROS 2 distribution
    from cv_bridge import CvBridge
    _BRIDGE: CvBridge | None = CvBridge()
except ImportError:  # pip-installed rclpy (no cv_bridge wheel exists)
    _BRIDGE = None

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[type, int]] = {
    'mono8': (np.uint8, 1), '8UC1': (np.uint8, 1),
    'mono16': (np.uint16, 1), '16UC1': (np.uint16, 1),
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), '8UC3': (np.uint8, 3),
    'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    '32FC1': (np.float32, 1),
}
COLOR_ENCODINGS = ('mono8', '8UC1', 'mono16', '16UC1', 'rgb8', 'bgr8', '8UC3', 'rgba8', 'bgra8')


# rosidl_generator_py's data setters keep an array.array('B') as it is only in a message that checks its
# fields (check_fields=True; ROS_PYTHON_CHECK_FIELDS=1 for all); otherwise they copy it once more
# (4.9 MB and ~2 ms for a 640x480 xyzrgb cloud). Generators without the option always keep it.
KEEP_DATA: dict[str, bool] = {'check_fields': True} if '_check_fields' in Image.__slots__ else {}


class MessageError(ValueError):
    """A message cannot be used: unsupported encoding, inconsistent size, bad calibration."""


def to_bytes(arr: np.ndarray) -> array.array:
    """Fast message data from an array (C-contiguous copy if needed)."""
    data = array.array('B')
    if arr.size:  # an empty array's memoryview cannot be cast
        data.frombytes(np.ascontiguousarray(arr).data.cast('B'))
    return data


def image_to_array(msg: Image) -> np.ndarray:
    """Image -> (H, W) or (H, W, C) array in the message's own encoding (zero-copy when the
    rows are not padded and the byte order is native)."""
    enc = msg.encoding
    if enc not in ENCODINGS:
        raise MessageError(f'unsupported image encoding {enc!r}; supported: {", ".join(ENCODINGS)}')
    dtype, channels = ENCODINGS[enc]
    h, w = msg.height, msg.width
    itemsize = np.dtype(dtype).itemsize
    row = w * channels * itemsize
    if h == 0 or w == 0:
        raise MessageError(f'image is empty ({w}x{h})')
    if msg.step < row or len(msg.data) < msg.step * (h - 1) + row:
        raise MessageError(f'{enc} image {w}x{h} needs step >= {row} and {msg.step * (h - 1) + row} '
                           f'bytes of data, got step {msg.step} and {len(msg.data)} bytes')
    if _BRIDGE is not None:
        return np.asarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding='passthrough'))
    buf = np.frombuffer(msg.data, np.uint8, count=msg.step * (h - 1) + row)
    rows = np.lib.stride_tricks.as_strided(buf, (h, row), (msg.step, 1))
    big = bool(msg.is_bigendian)
    out = rows.view(np.dtype(dtype).newbyteorder('>' if big else '<')) if itemsize > 1 else rows
    if itemsize > 1 and big != (sys.byteorder == 'big'):
        out = out.astype(dtype)
    out = out.reshape(h, w, channels) if channels > 1 else out.reshape(h, w)
    return out


def image_to_rgb8(msg: Image) -> np.ndarray:
    """Colour or grey Image -> (H, W, 3) uint8 RGB (what the networks take). mono16 / 16UC1
    (the same layout) are scaled by their maximum to 8 bits."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise MessageError(f'expected a colour or grey image ({", ".join(COLOR_ENCODINGS)}), '
                           f'got {msg.encoding!r}')
    a = image_to_array(msg)
    enc = msg.encoding
    if enc in ('mono16', '16UC1'):
        peak = max(int(a.max()), 1)
        a = (a.astype(np.float32) * (255.0 / peak)).astype(np.uint8)
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if enc.startswith('bgr'):
        return np.ascontiguousarray(a[:, :, 2::-1])
    return np.ascontiguousarray(a[:, :, :3])


def _image(shape: tuple[int, ...], dtype: np.dtype, encoding: str, header: Header | None,
           data: array.array) -> Image:
    """Image of an (H, W[, C]) array whose bytes are ``data`` (kept, not copied); MessageError if
    the dtype or channels do not fit ``encoding``."""
    if encoding not in ENCODINGS:
        raise MessageError(f'unsupported image encoding {encoding!r}')
    want, channels = ENCODINGS[encoding]
    if dtype != want or (shape[2] if len(shape) == 3 else 1) != channels or len(shape) not in (2, 3):
        raise MessageError(f'{encoding} needs {channels}-channel {np.dtype(want).name}, got {dtype} {shape}')
    msg = Image(**KEEP_DATA)
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(shape[0]), int(shape[1])
    msg.encoding = encoding
    msg.is_bigendian = sys.byteorder == 'big'
    msg.step = msg.width * channels * np.dtype(dtype).itemsize
    msg.data = data
    return msg


def array_to_image(arr: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """(H, W) or (H, W, C) array -> Image with the given encoding (dtype and channels checked);
    one copy of the data."""
    return _image(arr.shape, arr.dtype, encoding, header, to_bytes(arr))


class DataBuffer:
    """Message data kept from frame to frame: ``view`` gives a numpy array over it to fill, and
    ``image`` / ``cloud`` wrap what was filled in a message without copying it. A message made
    from it shares the buffer: publish it before the next ``view``."""

    def __init__(self) -> None:
        self.data = array.array('B')
        self._view: np.ndarray | None = None

    def view(self, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """(shape) array of ``dtype`` over the buffer (reallocated only when the size changes)."""
        if self._view is None or self._view.shape != tuple(shape) or self._view.dtype != dtype:
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            if len(self.data) != nbytes:
                self.data = array.array('B', bytes(nbytes))
            self._view = np.frombuffer(self.data, dtype).reshape(shape)
        return self._view

    def image(self, encoding: str, header: Header | None = None) -> Image:
        """Image of the array last filled through ``view`` (the buffer is the message's data)."""
        return _image(self._view.shape, self._view.dtype, encoding, header, self.data)

    def cloud(self, header: Header) -> PointCloud2:
        """Organized PointCloud2 of the (H, W, 3|4) float32 points last filled through ``view``
        (fields as ``pointcloud2`` makes them; the buffer is the message's data)."""
        return _cloud(self._view, header, self.data)


def camera_matrix(info: CameraInfo, rectified: bool = True) -> np.ndarray:
    """Intrinsics (3x3, float64) of a CameraInfo: for rectified images the left 3x3 of P (what
    image_rect is projected with), falling back to K when P is unset. MessageError if zero,
    NaN or not positive."""
    p = np.asarray(info.p, dtype=np.float64).reshape(3, 4)
    use_p = rectified and np.isfinite(p).all() and p[0, 0] > 0
    k = p[:, :3].copy() if use_p else np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    if not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise MessageError(f'camera_info of frame {info.header.frame_id!r} has no valid intrinsics '
                           f'(fx={k[0, 0]}, fy={k[1, 1]}); is the camera calibrated?')
    return k


def check_info_matches(info: CameraInfo, width: int, height: int) -> None:
    """MessageError unless camera_info describes an image of this size."""
    if (info.width, info.height) != (width, height):
        raise MessageError(f'camera_info is {info.width}x{info.height} but the image is {width}x{height}')


IDENTITY_R = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def make_camera_info(k: np.ndarray, p: np.ndarray, width: int, height: int, header: Header | None = None,
                     d: Sequence[float] = (0.0,) * 5, r: Sequence[float] = IDENTITY_R,
                     distortion_model: str = 'plumb_bob') -> CameraInfo:
    """The one CameraInfo builder: K (3x3), P (3x4), size (px), header, distortion and R
    (defaults: a rectified camera, D = 0 plumb_bob and R = I)."""
    out = CameraInfo()
    if header is not None:
        out.header = header
    out.width, out.height = int(width), int(height)
    out.distortion_model = distortion_model
    out.d, out.r = [float(v) for v in d], [float(v) for v in r]
    out.k = np.asarray(k, np.float64).ravel().tolist()
    out.p = np.asarray(p, np.float64).ravel().tolist()
    return out


def decimated_camera_info(info: CameraInfo, factor: int, width: int, height: int, header: Header) -> CameraInfo:
    """CameraInfo of ``geometry.decimate(image, factor)`` (width x height): K and P exactly as
    ``geometry.decimate_intrinsics`` (P's Tx, Ty divided too), D and R kept, header replaced."""
    k = np.asarray(info.k, np.float64).reshape(3, 3)
    p = np.asarray(info.p, np.float64).reshape(3, 4).copy()
    if factor > 1:
        if k[0, 0] > 0:  # an unset (zero) K stays unset
            k = geometry.decimate_intrinsics(k, factor)
        if p[0, 0] > 0:
            p[:, :3] = geometry.decimate_intrinsics(p[:, :3], factor)
            p[:2, 3] /= factor
    return make_camera_info(k, p, width, height, header, info.d, info.r, info.distortion_model)


_XYZ_FIELDS = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate('xyz')]
_RGB_FIELD = PointField(name='rgb', offset=12, datatype=PointField.FLOAT32, count=1)


def _cloud(points: np.ndarray, header: Header, data: array.array) -> PointCloud2:
    """PointCloud2 of (H, W, 3|4) float32 ``points`` whose bytes are ``data`` (kept, not copied)."""
    if points.dtype != np.float32 or points.ndim != 3 or points.shape[2] not in (3, 4):
        raise MessageError(f'points must be (H, W, 3|4) float32, got {points.dtype} {points.shape}')
    msg = PointCloud2(**KEEP_DATA)
    msg.header = header
    msg.height, msg.width = int(points.shape[0]), int(points.shape[1])
    msg.fields = _XYZ_FIELDS + ([_RGB_FIELD] if points.shape[2] == 4 else [])
    msg.is_bigendian = sys.byteorder == 'big'
    msg.point_step = 4 * points.shape[2]
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = False
    msg.data = data
    return msg


def pointcloud2(points: np.ndarray, header: Header) -> PointCloud2:
    """Organized PointCloud2 from an (H, W, 3) xyz or (H, W, 4) xyz+packed-rgb float32 array
    (``geometry.pack_rgb`` gives the rgb channel); NaN points are invalid (is_dense False)."""
    return _cloud(points, header, to_bytes(points))


def cloud_arrays(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray | None]:
    """Organized PointCloud2 with float32 x, y, z (and packed 'rgb') fields, as ``pointcloud2``
    makes -> (H, W, 3) float32 xyz and (H, W, 3) uint8 RGB (None without an 'rgb' field)."""
    offsets = {f.name: f.offset for f in msg.fields}
    if not {'x', 'y', 'z'} <= offsets.keys():
        raise MessageError(f'point cloud has no x, y, z fields (fields: {", ".join(offsets)})')
    raw = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, msg.point_step)
    order = '>' if msg.is_bigendian else '<'

    def channel(name: str, kind: str) -> np.ndarray:
        return raw[..., offsets[name]:offsets[name] + 4].copy().view(order + kind)[..., 0]

    xyz = np.stack([channel(n, 'f4') for n in 'xyz'], axis=-1).astype(np.float32)
    if 'rgb' not in offsets:
        return xyz, None
    bits = channel('rgb', 'u4')
    return xyz, np.stack([(bits >> s) & 0xFF for s in (16, 8, 0)], axis=-1).astype(np.uint8)


def disparity_image(disparity: np.ndarray, header: Header, f: float, t: float, min_disparity: float,
                    max_disparity: float, delta_d: float = 0.0, invalid: float | None = None) -> DisparityImage:
    """stereo_msgs/DisparityImage from (H, W) disparity in px (non-finite = invalid): a 32FC1
    image, ``valid_window`` the bounding box of the finite disparities. ``invalid``: the value
    written for non-finite disparities (e.g. ``min_disparity - 1``: the message defines values
    below min_disparity as invalid, which stereo_image_proc's consumers read); None keeps NaN."""
    disparity = np.asarray(disparity, np.float32)
    finite = np.isfinite(disparity)
    msg = DisparityImage()
    msg.header = header
    msg.image = array_to_image(disparity, '32FC1', header)
    if invalid is not None:  # written in the message's own bytes (no extra full-size copy)
        data = np.frombuffer(msg.image.data, np.float32).reshape(disparity.shape)
        np.copyto(data, np.float32(invalid), where=~finite)
    msg.f, msg.t = float(f), float(t)
    msg.min_disparity, msg.max_disparity = float(min_disparity), float(max_disparity)
    msg.delta_d = float(delta_d)
    rows, cols = np.flatnonzero(finite.any(axis=1)), np.flatnonzero(finite.any(axis=0))
    if rows.size:
        msg.valid_window.y_offset, msg.valid_window.x_offset = int(rows[0]), int(cols[0])
        msg.valid_window.height = int(rows[-1] - rows[0] + 1)
        msg.valid_window.width = int(cols[-1] - cols[0] + 1)
    return msg
