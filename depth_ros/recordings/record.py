"""A recording to try things on: camera_source's synthetic stereo stream (``sources.SyntheticSource``,
seeded, so the same arguments give the same bag) written as a ROS 2 bag with its ground truth
and the camera's poses.

Topics, under ``namespace`` (the camera_source messages, same frames and camera infos):
``left/image_rect``, ``right/image_rect`` (rgb8), ``left/camera_info``, ``right/camera_info``,
``ground_truth/depth`` (32FC1 m, NaN where nothing is hit) and ``ground_truth/disparity``
(32FC1 px), all with the left image's stamp; ``ground_truth/pose`` (geometry_msgs/PoseStamped:
the left optical frame in ``world``, the scene frame: x right, y down, z forward); ``/tf``
(world -> camera_link per frame) and ``/tf_static`` (camera_link -> the optical frames, as
camera_source broadcasts it, offered latched). Frame i is stamped ``start + i / rate`` s and
logged at that time.

A recording that looks unlike the training renders (to try adapting the networks to it):
``photos`` puts photographs on the surfaces, ``camera`` (a seed) sends both views through one
imperfect camera pair (``synthetic.CameraArtifacts``: blur, vignetting, exposure, noise, tone
curve, JPEG, rectification error; fixed for the recording, fresh noise per frame). The ground
truth stays exact."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Header

from .. import msgs
from ..nodes.camera_source import OPTICAL_ROTATION, camera_info
from ..frame_sources import Camera, Frame, SyntheticSource
from ..synthetic.camera import CameraArtifacts, apply_camera
from .bagio import TYPESTORE, BagWriter, prepare_output

WORLD = 'world'
DEFAULT_START = 1_700_000_000.0  # s: a fixed stamp of the first frame, so recordings are reproducible
FRAMES = {'left': 'camera_left_optical_frame', 'right': 'camera_right_optical_frame', 'base': 'camera_link'}


def quaternion(rot: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a 3x3 rotation matrix (w >= 0)."""
    m = rot
    w = np.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1.0 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1.0 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1.0 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
    return float(x), float(y), float(z), float(w)


def rotation(q: tuple[float, float, float, float]) -> np.ndarray:
    """3x3 rotation of a unit quaternion (x, y, z, w)."""
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _stamp(ns: int) -> dict[str, int]:
    return {'sec': ns // 1_000_000_000, 'nanosec': ns % 1_000_000_000}


def _transform(parent: str, child: str, ns: int, t: np.ndarray) -> object:
    """A rosbags TransformStamped (tf2_msgs has no PyPI wheel, so /tf is built with rosbags' types)."""
    types = TYPESTORE.types
    x, y, z, w = quaternion(t[:3, :3])
    header = types['std_msgs/msg/Header'](stamp=types['builtin_interfaces/msg/Time'](**_stamp(ns)), frame_id=parent)
    return types['geometry_msgs/msg/TransformStamped'](
        header=header, child_frame_id=child,
        transform=types['geometry_msgs/msg/Transform'](
            translation=types['geometry_msgs/msg/Vector3'](x=float(t[0, 3]), y=float(t[1, 3]), z=float(t[2, 3])),
            rotation=types['geometry_msgs/msg/Quaternion'](x=x, y=y, z=z, w=w)))


def _tf(transforms: list[object]) -> object:
    return TYPESTORE.types['tf2_msgs/msg/TFMessage'](transforms=transforms)


def record_synthetic(path: str | Path, *, frames: int = 30, size: tuple[int, int] = (640, 480), rate: float = 10.0,
                     seed: int = 0, namespace: str = '/camera', storage: str = 'mcap', force: bool = False,
                     start: float = DEFAULT_START, photos: bool = False, camera: int | None = None) -> dict[str, int]:
    """Write ``frames`` synthetic stereo frames (size (width, height) px) as a bag at ``path``;
    returns the messages written per topic. ``force`` replaces an existing bag; ``photos`` and
    ``camera`` (seed of an imperfect camera pair) change the look (see the module doc)."""
    if frames < 1 or rate <= 0:
        raise ValueError(f'need frames >= 1 and rate > 0; got {frames}, {rate}')
    path = prepare_output(path, force)
    source = SyntheticSource(size, seed=seed, frames=frames, photos=photos)
    source.wait()
    cam_rng = np.random.default_rng(camera)
    look = CameraArtifacts().sample(cam_rng) if camera is not None else None

    def frames_of_source() -> Iterator[tuple[np.ndarray, Frame]]:
        for pose in source.poses:
            frame = source.read()
            if look is not None:
                frame = Frame(apply_camera(frame.left, look, look['views'][0], cam_rng),
                              apply_camera(frame.right, look, look['views'][1], cam_rng, dy=look['dy']),
                              frame.depth, frame.disparity)
            yield pose, frame

    try:
        return write_frames(path, source.camera, frames_of_source(), rate=rate, namespace=namespace,
                            storage=storage, start=start)
    finally:
        source.close()


def write_frames(path: str | Path, cam: Camera, frames: Iterable[tuple[np.ndarray, Frame]], *, rate: float = 10.0,
                 namespace: str = '/camera', storage: str = 'mcap', force: bool = False,
                 start: float = DEFAULT_START) -> dict[str, int]:
    """Write (world-from-left-optical pose (4, 4), stereo ``Frame`` with ground truth depth and
    disparity) pairs of the rectified camera ``cam`` as a bag at ``path`` with the topics of the
    module doc; returns the messages written per topic."""
    path = prepare_output(path, force)
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    link_optical = np.eye(4)  # camera_link -> left optical frame (REP 103)
    link_optical[:3, :3] = rotation(OPTICAL_ROTATION)
    writer = BagWriter(path, storage)
    try:
        t0 = int(round(start * 1e9))
        right_in_link = np.eye(4)
        right_in_link[:3, :3], right_in_link[1, 3] = link_optical[:3, :3], -cam.baseline
        writer.write('/tf_static', _tf([_transform(FRAMES['base'], FRAMES['left'], t0, link_optical),
                                        _transform(FRAMES['base'], FRAMES['right'], t0, right_in_link)]),
                     t0, latched=True)
        infos = {side: camera_info(cam, FRAMES[side], side == 'right') for side in ('left', 'right')}
        for i, (pose, frame) in enumerate(frames):
            ns_i = t0 + int(round(i * 1e9 / rate))
            stamp = Time(**_stamp(ns_i))
            left, right = Header(stamp=stamp, frame_id=FRAMES['left']), Header(stamp=stamp, frame_id=FRAMES['right'])
            infos['left'].header, infos['right'].header = left, right
            out = {'left/image_rect': msgs.array_to_image(frame.left, 'rgb8', left),
                   'left/camera_info': infos['left'],
                   'right/image_rect': msgs.array_to_image(frame.right, 'rgb8', right),
                   'right/camera_info': infos['right'],
                   'ground_truth/depth': msgs.array_to_image(frame.depth, '32FC1', left),
                   'ground_truth/disparity': msgs.array_to_image(frame.disparity, '32FC1', left),
                   'ground_truth/pose': _pose(pose, stamp)}
            for topic, msg in out.items():
                writer.write(f'{ns}/{topic}', msg, ns_i)
            world_link = pose @ np.linalg.inv(link_optical)
            writer.write('/tf', _tf([_transform(WORLD, FRAMES['base'], ns_i, world_link)]), ns_i)
    finally:
        writer.close()
    return dict(writer.counts)


def _pose(pose: np.ndarray, stamp: Time) -> PoseStamped:
    """PoseStamped of a scene-from-camera transform (4, 4) in the world frame."""
    msg = PoseStamped(header=Header(stamp=stamp, frame_id=WORLD))
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in pose[:3, 3])
    q.x, q.y, q.z, q.w = quaternion(pose[:3, :3])
    return msg
