"""camera_source: the built-in input of depth_ros. Publishes a rectified stereo pair (or one
camera) with camera_info at a fixed rate from a synthetic scene (with exact ground truth), an
image folder or a video file (see depth_ros.frame_sources).

Published (relative names, remappable); every topic of one frame carries the same stamp:
  left/image_rect, right/image_rect (rgb8), left/camera_info, right/camera_info (rectified
  pair, right P[3] = -fx*B); image + camera_info (the left view, for mono_depth_node);
  ground_truth/depth (32FC1 m, NaN invalid), ground_truth/disparity (32FC1 px) for the
  synthetic source. Mono sources (a video, a folder without left/ and right/) publish image
  and camera_info only. Camera infos describe rectified images: K = P[:3, :3], R = I,
  D = 0, plumb_bob. A static TF camera_link -> optical frames (REP 103) is broadcast when
  tf2_ros is available.
"""
from __future__ import annotations

import sys
import time
from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from .. import msgs
from ..frame_sources import Camera, FileSource, Frame, SourceError, SyntheticSource
from .diagnostics import ERROR, Diagnostics, ErrorReporter
from .params import ParameterSet, declare_qos
from .runtime import guarded, run_node

SOURCES = ('synthetic', 'folder', 'video')
OPTICAL_ROTATION = (-0.5, 0.5, -0.5, 0.5)  # x, y, z, w: camera_link (x fwd, z up) -> optical


def camera_info(camera: Camera, frame_id: str, right: bool = False) -> CameraInfo:
    """CameraInfo of the left (or right) rectified image: K = P[:3, :3], R = I, D = 0."""
    p = camera.projection(right)
    return msgs.make_camera_info(p[:, :3], p, camera.width, camera.height, Header(frame_id=frame_id))


class CameraSource(Node):
    """Publishes frames of a source at ``rate`` Hz (see the module docstring). Raises
    SourceError when the source cannot be opened (missing path, bad calibration)."""

    def __init__(self, **kwargs: Any) -> None:
        self.source: FileSource | SyntheticSource | None = None  # closed by destroy_node, also on errors
        super().__init__('camera_source', **kwargs)
        p = self.params = ParameterSet(self)
        kind = p.declare('source', 'synthetic', "Input: 'synthetic' (a textured scene with exact ground "
                         "truth), 'folder' (images; left/ + right/ for stereo) or 'video' (mono).",
                         choices=SOURCES, read_only=True)
        path = p.declare('path', '', 'Image folder or video file (folder and video sources).', read_only=True)
        calibration = p.declare('calibration', '', 'camera_calibration YAML (mono) or folder with left.yaml '
                                '+ right.yaml (stereo); empty: look next to the images.', read_only=True)
        rectify = p.declare('rectify', False, 'Undistort and rectify raw images with the calibration.',
                            read_only=True)
        rate = p.declare('rate', 10.0, 'Publish rate (Hz).', range=(0.1, 500.0))
        width = p.declare('width', 640, 'Published image width (px); 0 = size of the files.',
                          range=(0, 8192), read_only=True)
        height = p.declare('height', 480, 'Published image height (px); 0 = size of the files.',
                           range=(0, 8192), read_only=True)
        fx = p.declare('fx', 0.0, 'Focal length (px) of the source images (files: at their own size; '
                       'synthetic: at width x height); 0 = from the scene, the calibration, or a 60 degree '
                       'field of view.', range=(0.0, 1e5), read_only=True)
        baseline = p.declare('baseline', 0.0, 'Stereo baseline (m); 0 = from the scene or calibration.',
                             range=(0.0, 10.0), read_only=True)
        seed = p.declare('seed', 0, 'Synthetic scene seed.', range=(0, 2**31 - 1), read_only=True)
        frames = p.declare('frames', 20, 'Synthetic frames pre-rendered along the camera path (played '
                           'forwards then backwards).', range=(1, 1000), read_only=True)
        self.loop = p.declare('loop', True, 'Start again at the end of a folder or video.')
        self.left_frame = p.declare('left_frame_id', 'camera_left_optical_frame', 'Frame of the left view.',
                                    read_only=True)
        self.right_frame = p.declare('right_frame_id', 'camera_right_optical_frame', 'Frame of the right view.',
                                     read_only=True)
        self.base_frame = p.declare('base_frame_id', 'camera_link', 'Body frame of the static TF (REP 103).',
                                    read_only=True)
        qos = declare_qos(p)
        p.on_change(lambda changes: None, self._apply)
        if (width == 0) != (height == 0):
            raise SourceError(f'width and height must both be 0 (file size) or both > 0; got {width}x{height}')
        size = (width, height) if width else None
        if kind == 'synthetic':
            self.source = SyntheticSource(size or (640, 480), fx=fx, baseline=baseline, seed=seed, frames=frames)
        else:
            self.source = FileSource(kind, path, calibration=calibration, rectify=rectify, fx=fx,
                                     baseline=baseline, size=size)
            if self.source.assumed_focal:
                self.get_logger().warning(f'no calibration for {path} and fx is 0: assuming a 60 degree field '
                                          'of view; metric depth will be off by the focal-length error')
            if self.source.unrectified:
                self.get_logger().warning('the calibration has distortion or rectification but rectify is '
                                          'false: images are published as they are')
        self.errors = ErrorReporter(self)
        self.diagnostics = Diagnostics(self, self.errors, 'camera source')
        cam = self.source.camera
        self.diagnostics.info = {'source': kind, 'path': path, 'size': f'{cam.width}x{cam.height}',
                                 'fx (px)': f'{cam.p[0, 0]:.2f}', 'baseline (m)': f'{cam.baseline:.4f}'}
        self.infos = {'left': camera_info(cam, self.left_frame), 'right': camera_info(cam, self.right_frame, True)}
        topics = ['image', 'camera_info']
        if self.source.stereo:
            topics += ['left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info']
        if kind == 'synthetic':
            topics += ['ground_truth/depth', 'ground_truth/disparity']
        self.pubs = {t: self.create_publisher(CameraInfo if t.endswith('info') else Image, t, qos) for t in topics}
        self.published = 0
        self._ended = False
        self.timer = self.create_timer(1.0 / rate, guarded(self, self._tick))
        self._broadcast_tf(cam.baseline)
        self.get_logger().info(f'{kind} source{" " + path if path else ""}: {cam.width}x{cam.height} '
                               f'{"stereo" if self.source.stereo else "mono"} at {rate:g} Hz on '
                               f'{", ".join(self.pubs)}')

    def _apply(self, changes: dict) -> None:
        if 'rate' in changes:
            self.timer.cancel()
            self.destroy_timer(self.timer)
            self.timer = self.create_timer(1.0 / changes['rate'], guarded(self, self._tick))
        self.loop = changes.get('loop', self.loop)

    def _broadcast_tf(self, baseline: float) -> None:
        """Static camera_link -> optical frame transforms (REP 103), if tf2_ros exists."""
        try:
            from geometry_msgs.msg import TransformStamped
            from tf2_ros import StaticTransformBroadcaster
        except ImportError:
            self.get_logger().debug('tf2_ros is not importable: no static TF for the optical frames')
            return
        transforms = []
        for frame, y in ((self.left_frame, 0.0), (self.right_frame, -baseline)):
            if frame == self.right_frame and not self.source.stereo:
                continue
            t = TransformStamped()
            t.header.stamp = self.get_clock().now().to_msg()
            t.header.frame_id, t.child_frame_id = self.base_frame, frame
            t.transform.translation.y = y  # the right camera is at -y of camera_link (x forward, y left)
            q = t.transform.rotation
            q.x, q.y, q.z, q.w = OPTICAL_ROTATION
            transforms.append(t)
        self._tf = StaticTransformBroadcaster(self)
        self._tf.sendTransform(transforms)

    def _next_frame(self) -> Frame | None:
        """The next frame; None (and one log line) at the end of a sequence without loop."""
        frame = self.source.read()
        if frame is None and self.loop:
            self.source.rewind()
            frame = self.source.read()
        if frame is None and not self._ended:
            self._ended = True
            self.get_logger().info(f'end of {self.source.path}: published {self.published} frames (loop is false)')
        return frame

    def _tick(self) -> None:
        start = time.monotonic()
        try:
            frame = self._next_frame()
        except SourceError as e:
            self.errors.report('read', str(e), ERROR)
            return
        if frame is None:
            return
        stamp = self.get_clock().now().to_msg()
        left, right = Header(stamp=stamp, frame_id=self.left_frame), Header(stamp=stamp, frame_id=self.right_frame)
        for info, header in ((self.infos['left'], left), (self.infos['right'], right)):
            info.header = header
        left_image = msgs.array_to_image(frame.left, 'rgb8', left)
        out: dict[str, object] = {'image': left_image, 'camera_info': self.infos['left']}
        if frame.right is not None:
            out.update({'left/image_rect': left_image, 'left/camera_info': self.infos['left'],
                        'right/image_rect': msgs.array_to_image(frame.right, 'rgb8', right),
                        'right/camera_info': self.infos['right']})
        truth = {'ground_truth/depth': frame.depth, 'ground_truth/disparity': frame.disparity}
        for topic, values in truth.items():  # built only when someone listens
            if values is not None and self.pubs[topic].get_subscription_count() > 0:
                out[topic] = msgs.array_to_image(values, '32FC1', left)
        for topic, msg in out.items():
            try:
                self.pubs[topic].publish(msg)
            except Exception as e:  # rclpy raises RCLError "cannot publish data" under load
                self.errors.report('publish', f'cannot publish {topic}: {e}')
        self.published += 1
        self.diagnostics.frame_in()
        latency = time.monotonic() - start
        self.diagnostics.frame_out(latency, latency)

    def destroy_node(self) -> None:
        """Stop the source (renderer thread, video file), then destroy the node."""
        if self.source is not None:
            self.source.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``camera_source`` executable."""
    try:
        run_node(CameraSource, args)
    except SourceError as e:
        print(f'camera_source: {e}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
