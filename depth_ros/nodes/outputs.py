"""The outputs both depth nodes publish: ``depth/image`` (REP 118: 32FC1 metres with NaN invalid,
or 16UC1 millimetres with 0 invalid), ``depth/camera_info`` (always the depth image's size) and
``points`` (organized PointCloud2, xyz or xyz + rgb, NaN invalid), all with the input image's
header. The messages' data buffers (``msgs.DataBuffer``: filled in place, published without a
copy) and the back-projection rays (``geometry.Backprojector``) are reused between frames."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from .. import geometry, msgs
from .params import ParameterSet
from .diagnostics import ErrorReporter

class CloudFiller:
    """Fills organized clouds ((H, W, 3) xyz or (H, W, 4) xyz + packed rgb, float32) from depth
    with a ``geometry.Backprojector`` (rebuilt when K or the size change) and a kept colour
    scratch buffer: about 0.5 ms at 640x480 with colour."""

    def __init__(self) -> None:
        self._backproject: geometry.Backprojector | None = None
        self._bgra: np.ndarray | None = None

    def fill(self, depth: np.ndarray, rgb: np.ndarray | None, k: np.ndarray, out: np.ndarray) -> np.ndarray:
        """(H, W) depth (m, NaN invalid) with intrinsics ``k`` -> organized cloud in the optical
        frame written into ``out`` ((H, W, 3|4) float32, C-contiguous): xyz (NaN where depth is
        NaN), + packed colour of ``rgb`` (H, W, 3 uint8) if given."""
        h, w = depth.shape
        if self._backproject is None or not self._backproject.matches(k, w, h):
            self._backproject = geometry.Backprojector(k, w, h)
            self._bgra = np.empty((h, w, 4), np.uint8)
        extra = [] if rgb is None else [geometry.pack_rgb(rgb, self._bgra)]
        return self._backproject(depth, out, extra)


@dataclass
class OutputSettings:
    """Run-time output parameters (see ``DepthOutputs.declare``)."""
    min_depth: float = 0.1
    max_depth: float = 20.0
    decimation: int = 1
    publish_points: bool = True
    points_rgb: bool = True
    depth_format: str = '32FC1'


class DepthOutputs:
    """Publishers and per-frame conversion for depth/image, depth/camera_info and points."""

    NAMES = ('min_depth', 'max_depth', 'decimation', 'publish_points', 'points_rgb', 'depth_format')
    MOSTLY_OUTSIDE = 0.5  # share of the pixels outside [min_depth, max_depth] that is warned about

    def __init__(self, node: Node, qos: QoSProfile, errors: ErrorReporter, settings: OutputSettings) -> None:
        self.settings = settings
        self._errors = errors
        self.depth_pub = node.create_publisher(Image, 'depth/image', qos)
        self.info_pub = node.create_publisher(CameraInfo, 'depth/camera_info', qos)
        self.points_pub = node.create_publisher(PointCloud2, 'points', qos)
        self._cloud = CloudFiller()
        self._buffers = {'depth': msgs.DataBuffer(), 'points': msgs.DataBuffer()}  # message data, kept
        self.publish_time = 0.0
        # offline use (depth_ros.recordings): when set, messages go to sink(topic, msg), not to DDS
        self.sink: Callable[[str, Any], None] | None = None

    @staticmethod
    def declare(params: ParameterSet, max_depth: float = 20.0) -> OutputSettings:
        """Declare the output parameters (all changeable at run time) and return their values."""
        return OutputSettings(
            min_depth=params.declare('min_depth', 0.1, 'Depths below this (m) are published as invalid (NaN).',
                                     range=(0.0, 1000.0)),
            max_depth=params.declare('max_depth', max_depth, 'Depths above this (m) are published as invalid '
                                     '(NaN); also bounds the point cloud.', range=(0.01, 1000.0)),
            decimation=params.declare('decimation', 1, 'Output resolution divisor: depth, camera_info and points '
                                      'are every n-th pixel of the input (disparity stays full size).',
                                      range=(1, 16)),
            publish_points=params.declare('publish_points', True, 'Publish the organized point cloud on points.'),
            points_rgb=params.declare('points_rgb', True, "Colour the point cloud from the image ('rgb' field); "
                                      'false publishes xyz only (less bandwidth).'),
            depth_format=params.declare('depth_format', '32FC1', "depth/image encoding: '32FC1' metres with "
                                        "NaN invalid (REP 118) or '16UC1' millimetres with 0 invalid.",
                                        choices=('32FC1', '16UC1')))

    @staticmethod
    def check(values: dict[str, Any]) -> str | None:
        """Reason a (merged) set of output values is inconsistent, or None."""
        if values['min_depth'] >= values['max_depth']:
            return f'min_depth ({values["min_depth"]} m) must be below max_depth ({values["max_depth"]} m)'
        return None

    def publishers(self) -> list[Any]:
        """Publishers whose subscribers make the node work (points only when enabled)."""
        return [self.depth_pub, self.info_pub] + ([self.points_pub] if self.settings.publish_points else [])

    @staticmethod
    def wanted(publisher: Any, lazy: bool) -> bool:
        """Whether to fill ``publisher`` this frame: always unless lazy and nobody subscribes."""
        return not lazy or publisher.get_subscription_count() > 0

    def _buffer(self, name: str) -> msgs.DataBuffer:
        """The kept data buffer ``name``; a new one per frame with ``sink`` (its messages are kept)."""
        return self._buffers[name] if self.sink is None else msgs.DataBuffer()

    def publish_message(self, publisher: Any, msg: Any) -> bool:
        """Publish, counting failures (rclpy raises "cannot publish data" under load); the time
        spent (serialization and handing to DDS) adds to ``publish_time`` (s). With ``sink`` set,
        the message is handed to it with the publisher's resolved topic instead."""
        if self.sink is not None:
            self.sink(publisher.topic_name, msg)
            return True
        t0 = time.perf_counter()
        try:
            publisher.publish(msg)
            return True
        except Exception as e:
            self._errors.report('publish', f'cannot publish {publisher.topic_name}: {e}')
            return False
        finally:
            self.publish_time += time.perf_counter() - t0

    def clip(self, depth: np.ndarray) -> np.ndarray:
        """Set depth (m, float32, modified in place) to NaN outside [min_depth, max_depth] and
        where not positive (``geometry.mask_invalid``); returns it. When most of the image
        (``MOSTLY_OUTSIDE``) is a finite depth outside that range, a throttled 'range' warning
        says so: the published depth would be mostly NaN without another hint."""
        s = self.settings
        outside = geometry.count_outside(depth, s.min_depth, s.max_depth)
        if outside > self.MOSTLY_OUTSIDE * depth.size:
            with np.errstate(invalid='ignore'):
                finite = depth[np.isfinite(depth)]
            self._errors.report('range', (
                f'{100.0 * outside / depth.size:.0f}% of the depth image lies outside [min_depth {s.min_depth} m, '
                f'max_depth {s.max_depth} m] (median depth {float(np.median(finite)):.2f} m) and is published as '
                'NaN: widen min_depth/max_depth if the scene is that near or far, or check the camera_info focal '
                'length (the depth scales with it)'))
        return geometry.mask_invalid(depth, s.min_depth, s.max_depth)

    def depth_from_disparity(self, disparity: np.ndarray, f: float, baseline: float) -> np.ndarray:
        """Clipped depth (m, float32) = f * B / d from disparity (px, NaN invalid), masked and
        checked by ``clip``. ``f`` (px) and ``baseline`` (m) must be positive."""
        depth = np.empty(disparity.shape, np.float32)
        with np.errstate(divide='ignore', invalid='ignore'):
            np.divide(np.float32(f * baseline), disparity, out=depth)
        return self.clip(depth)

    def publish(self, depth: np.ndarray, rgb: np.ndarray, info: CameraInfo, k: np.ndarray, header: Header,
                lazy: bool) -> int:
        """Publish the outputs of one frame; returns how many messages went out.

        ``depth`` (H, W) float32 metres, already clipped (``clip`` or ``depth_from_disparity``;
        NaN invalid) and ``rgb`` (H, W, 3) uint8 are at the input image's resolution, described by
        ``info`` whose intrinsics are ``k`` (3x3); decimation and conversion happen here.
        ``header`` (the input image's) goes on every message.
        """
        s = self.settings
        if s.decimation > 1:
            depth = np.ascontiguousarray(geometry.decimate(depth, s.decimation))
            rgb = geometry.decimate(rgb, s.decimation)
            k = geometry.decimate_intrinsics(k, s.decimation)
        h, w = depth.shape
        sent = 0
        if self.wanted(self.depth_pub, lazy):
            buffer = self._buffer('depth')
            if s.depth_format == '32FC1':
                np.copyto(buffer.view((h, w), np.float32), depth)
            else:
                geometry.depth_to_millimetres(depth, out=buffer.view((h, w), np.uint16))
            sent += self.publish_message(self.depth_pub, buffer.image(s.depth_format, header))
        if self.wanted(self.info_pub, lazy):
            sent += self.publish_message(self.info_pub, msgs.decimated_camera_info(info, s.decimation, w, h, header))
        if s.publish_points and self.wanted(self.points_pub, lazy):
            buffer = self._buffer('points')
            points = buffer.view((h, w, 4 if s.points_rgb else 3), np.float32)
            self._cloud.fill(depth, rgb if s.points_rgb else None, k, points)
            sent += self.publish_message(self.points_pub, buffer.cloud(header))
        return sent
