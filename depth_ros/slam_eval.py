"""Feed depth_ros depth into visual odometry and TSDF mapping on a synthetic walk with exact poses
(no ROS; Open3D and evo are imported only by the functions that use them: ``pip install .[slam]``).

The sequence: ``depth_ros.synthetic.random_scene(seed)`` (an indoor room) seen by a stereo camera
walking 1.8 m forwards while panning +-20 degrees (``walk_poses``). Every pose is the
scene-from-camera transform of the left camera's optical frame (x right, y down, z forwards);
the scene frame is the optical frame of the identity pose, so the poses are directly the
world-from-camera poses odometry estimates (up to its start pose, which is taken from the ground
truth).

Depth comes from the estimators the nodes run (``depth_ros.inference``) with the nodes' own
conversion: disparity -> depth (``geometry.disparity_to_depth``), then NaN outside
[``MIN_DEPTH``, ``MAX_DEPTH``] (``geometry.mask_invalid``, as the nodes do; their default parameters).

    seq = render_walk(frames=60, size=(320, 240))
    run = estimate_depth(seq, 'opencv_sgbm')
    poses, lost = rgbd_odometry(seq, run.depth)
    errors = trajectory_errors(poses, seq.poses)      # ATE / RPE (evo)
    write_bag(seq, 'walk_bag')                         # as a recording, for depth-ros-adapt
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import geometry, synthetic
from .model_card import DEFAULT_MONO

MIN_DEPTH, MAX_DEPTH = 0.1, 20.0    # m: the depth nodes' default min_depth / max_depth
GROUND_TRUTH = 'ground_truth'
STEREO_METHODS = ('opencv_sgbm', 'anynet', 'anynet_spn8')
MONO_DEFAULT = DEFAULT_MONO           # the mono node's default model
METHODS = (GROUND_TRUTH, *STEREO_METHODS, MONO_DEFAULT)
SEED = 3                            # an indoor room with textured boxes; the walk stays 0.8 m clear of them
WALK_M, PAN_RAD = 1.8, 0.35         # forward distance, pan amplitude of ``walk_poses``


@dataclass
class Walk:
    """A rendered stereo walk: N frames of (H, W, 3) uint8 RGB left/right, (H, W) float32 ground
    truth depth (m, NaN where nothing is hit), poses (N, 4, 4) world-from-left-camera and the
    rectified camera (intrinsics px, baseline m)."""
    left: list[np.ndarray]
    right: list[np.ndarray]
    depth: list[np.ndarray]
    poses: np.ndarray
    camera: synthetic.StereoCamera

    @property
    def k(self) -> np.ndarray:
        """3x3 intrinsics of the left camera (px)."""
        c = self.camera
        return np.array([[c.fx, 0.0, c.cx], [0.0, c.fy, c.cy], [0.0, 0.0, 1.0]])


@dataclass
class DepthRun:
    """Depth maps of one method over a sequence: (H, W) float32 m, NaN invalid; seconds per frame."""
    method: str
    depth: list[np.ndarray]
    seconds_per_frame: float
    density: float = field(init=False)

    def __post_init__(self) -> None:
        self.density = float(np.mean([np.isfinite(d).mean() for d in self.depth]))


def walk_poses(frames: int, walk: float = WALK_M, pan: float = PAN_RAD) -> np.ndarray:
    """(frames, 4, 4) world-from-camera poses of a handheld walk from rest to rest (eased:
    s = (1 - cos pi t) / 2): ``walk`` m forwards (z) with a 30 cm sideways arc, a 5 cm bob, the
    view panning right, left and back (yaw = pan sin 2 pi s, rad) and tilting down 3 degrees
    mid-way."""
    s = (1.0 - np.cos(np.pi * np.linspace(0.0, 1.0, frames))) / 2.0
    return np.stack([synthetic.pose_matrix(x=0.3 * np.sin(np.pi * u), y=-0.05 * np.sin(3 * np.pi * u), z=walk * u,
                                           yaw=pan * np.sin(2 * np.pi * u), pitch=0.05 * np.sin(np.pi * u))
                     for u in s])


def render_walk(frames: int = 60, size: tuple[int, int] = (320, 240), seed: int = SEED,
                walk: float = WALK_M, pan: float = PAN_RAD) -> Walk:
    """Render the walk (``walk_poses``) through ``random_scene(seed)``; ``size`` (W, H) px with the
    synthetic camera's 500 px focal length at 640 px width scaled to it, 0.12 m baseline."""
    width, height = size
    default = synthetic.StereoCamera()
    f = default.fx * width / default.width
    camera = synthetic.StereoCamera(width, height, f, f, (width - 1) / 2, (height - 1) / 2, default.baseline)
    scene = synthetic.random_scene(seed)
    poses = walk_poses(frames, walk, pan)
    left, right, depth = [], [], []
    for pose in poses:
        out = synthetic.render_stereo(scene, camera, pose)
        left.append(out['left'])
        right.append(out['right'])
        depth.append(out['depth'])
    return Walk(left, right, depth, poses, camera)


def write_bag(seq: Walk, path: str | Path, force: bool = False) -> dict[str, int]:
    """Write the walk as a ``depth-ros-record`` bag at ``path`` (rectified pair, camera_infos,
    ground truth depth / disparity / pose; ``recordings.record.write_frames``), e.g. for
    ``depth-ros-adapt``; returns the messages written per topic."""
    from .frame_sources import Camera, Frame, pinhole
    from .recordings.record import write_frames

    c = seq.camera
    cam = Camera(pinhole(c.width, c.height, c.fx, c.fy), c.width, c.height, c.baseline)
    frames = ((pose, Frame(left, right, depth, geometry.disparity_to_depth(depth, c.fx, c.baseline)))
              for pose, left, right, depth in zip(seq.poses, seq.left, seq.right, seq.depth))
    return write_frames(path, cam, frames, force=force)


def method_kind(method: str) -> str:
    """'ground_truth', 'stereo' (OpenCV matchers, stereo networks) or 'mono' (its model card)."""
    from .inference.opencv_stereo import METHODS as OPENCV
    from .model_card import find_card, load_card

    if method in (GROUND_TRUTH, *OPENCV):
        return 'stereo' if method in OPENCV else GROUND_TRUTH
    return load_card(find_card(method)).kind


def estimate_depth(seq: Walk, method: str) -> DepthRun:
    """Depth of every left frame by ``method``: 'ground_truth', a stereo method (OpenCV or a
    stereo network: ``StereoEstimator``, disparity -> depth) or a mono network
    (``DepthEstimator`` given the camera's fx, as the mono node makes its depth metric); clipped
    to [MIN_DEPTH, MAX_DEPTH] as the nodes clip it."""
    from .inference import DepthEstimator, StereoEstimator

    c, kind = seq.camera, method_kind(method)
    stereo = StereoEstimator(method) if kind == 'stereo' else None
    mono = DepthEstimator(method) if kind == 'mono' else None

    def estimate(i: int) -> np.ndarray:
        if stereo is not None:
            return geometry.disparity_to_depth(stereo(seq.left[i], seq.right[i]), c.fx, c.baseline)
        return mono(seq.left[i], fx=c.fx) if mono is not None else seq.depth[i]

    depth, start = [], time.perf_counter()
    for i in range(len(seq.left)):
        depth.append(geometry.mask_invalid(np.array(estimate(i), np.float32), MIN_DEPTH, MAX_DEPTH))
    return DepthRun(method, depth, (time.perf_counter() - start) / len(seq.left))


def _rgbd(o3d, rgb: np.ndarray, depth: np.ndarray, grey: bool):
    """Open3D RGBDImage of uint8 RGB and depth (m, NaN invalid -> 0, Open3D's invalid)."""
    return o3d.geometry.RGBDImage.create_from_color_and_depth(
        o3d.geometry.Image(np.ascontiguousarray(rgb)), o3d.geometry.Image(np.nan_to_num(depth, nan=0.0)),
        depth_scale=1.0, depth_trunc=MAX_DEPTH, convert_rgb_to_intensity=grey)


def _intrinsic(o3d, seq: Walk):
    """Open3D's pinhole intrinsics of the left camera."""
    c = seq.camera
    return o3d.camera.PinholeCameraIntrinsic(c.width, c.height, c.fx, c.fy, c.cx, c.cy)


def step_size(motion: np.ndarray) -> tuple[float, float]:
    """Translation (m) and rotation angle (deg) of a rigid motion (4, 4)."""
    cos = np.clip((np.trace(motion[:3, :3]) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.linalg.norm(motion[:3, 3])), float(np.degrees(np.arccos(cos)))


def rgbd_odometry(seq: Walk, depth: list[np.ndarray], jacobian: str = 'color', depth_diff_max: float = 0.2,
                  max_step: tuple[float, float] = (0.25, 15.0)) -> tuple[np.ndarray, int]:
    """Frame-to-frame RGB-D odometry (Open3D, 3-level pyramid) on the left images and ``depth``;
    the first pose is the ground truth's.

    ``jacobian``: 'color' (photometric alignment of the intensities warped with the depth,
    Steinbruecker et al.) or 'hybrid' (plus a depth term, Kerl et al.; worse on these scenes,
    whose object outlines have hard depth steps). Each step starts from the previous step's
    motion (constant velocity); where Open3D reports failure, or a step larger than ``max_step``
    (m, deg: a handheld camera does not jump), that motion is kept.
    ``depth_diff_max`` (m): largest depth difference of a correspondence (0.2 m: stereo depth
    noise at 5 m). Returns the chained world-from-camera poses (N, 4, 4) and the number of
    failed steps.
    """
    import open3d as o3d

    terms = {'color': o3d.pipelines.odometry.RGBDOdometryJacobianFromColorTerm,
             'hybrid': o3d.pipelines.odometry.RGBDOdometryJacobianFromHybridTerm}
    if jacobian not in terms:
        raise ValueError(f"jacobian must be 'color' or 'hybrid', not {jacobian!r}")
    intrinsic = _intrinsic(o3d, seq)
    option = o3d.pipelines.odometry.OdometryOption(depth_diff_max=depth_diff_max, depth_min=MIN_DEPTH,
                                                   depth_max=MAX_DEPTH)
    poses, step, lost = [np.asarray(seq.poses[0], np.float64)], np.eye(4), 0
    previous = _rgbd(o3d, seq.left[0], depth[0], True)
    for i in range(1, len(depth)):
        current = _rgbd(o3d, seq.left[i], depth[i], True)
        # the transform maps points of the source (current) camera into the target (previous) one
        ok, motion, _ = o3d.pipelines.odometry.compute_rgbd_odometry(current, previous, intrinsic, step,
                                                                     terms[jacobian](), option)
        if ok and all(a <= b for a, b in zip(step_size(np.asarray(motion)), max_step)):
            step = np.asarray(motion)
        else:
            lost += 1
        poses.append(poses[-1] @ step)
        previous = current
    return np.stack(poses), lost


def fuse_tsdf(seq: Walk, depth: list[np.ndarray], poses: np.ndarray, voxel: float = 0.03,
              max_depth: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Integrate the frames into a TSDF (Open3D's VoxelBlockGrid, ``voxel`` m, 16^3-voxel blocks,
    truncation 8 voxels;
    the legacy ScalableTSDFVolume of open3d 0.20 extracts nothing) at ``poses``
    (world-from-camera), depths beyond ``max_depth`` m left out, and extract its surface:
    points (M, 3) m in the world frame and colours (M, 3) in [0, 1]."""
    import open3d as o3d
    import open3d.core as o3c

    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=('tsdf', 'weight', 'color'), attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
        attr_channels=(1, 1, 3), voxel_size=voxel, block_resolution=16, block_count=1000)  # grows as needed
    k = o3c.Tensor(seq.k, o3c.float64)
    fused = 0
    for rgb, d, pose in zip(seq.left, depth, poses):
        d = np.where(d <= max_depth, np.nan_to_num(d, nan=0.0), 0.0).astype(np.float32)
        if not d.any():
            continue  # Open3D aborts on a frame that touches no block
        image = o3d.t.geometry.Image(d)
        extrinsic = o3c.Tensor(np.linalg.inv(pose), o3c.float64)
        blocks = grid.compute_unique_block_coordinates(image, k, extrinsic, 1.0, max_depth)
        grid.integrate(blocks, image, o3d.t.geometry.Image((rgb / 255.0).astype(np.float32)), k, extrinsic,
                       1.0, max_depth)
        fused += 1
    cloud = grid.extract_point_cloud() if fused else None
    if cloud is None or 'positions' not in cloud.point:
        return np.zeros((0, 3)), np.zeros((0, 3))
    return cloud.point.positions.numpy().astype(np.float64), cloud.point.colors.numpy().astype(np.float64)


@dataclass
class TrajectoryErrors:
    """ATE (RMSE of position after alignment, m) and RPE (RMSE over consecutive frames of the
    relative motion's error: translation m/frame, rotation deg/frame) of an estimated trajectory;
    ``scale`` is the Sim(3) alignment's scale (1 for SE(3))."""
    ate: float
    rpe_trans: float
    rpe_rot: float
    scale: float = 1.0


def trajectory_errors(estimate: np.ndarray, truth: np.ndarray, correct_scale: bool = False) -> TrajectoryErrors:
    """ATE after Umeyama alignment (SE(3); Sim(3) with ``correct_scale``) and frame-to-frame RPE
    (alignment-free) with evo; trajectories (N, 4, 4) paired by index."""
    from evo.core import metrics
    from evo.core.trajectory import PoseTrajectory3D

    stamps = np.arange(len(truth), dtype=np.float64)
    ref = PoseTrajectory3D(poses_se3=list(np.asarray(truth, np.float64)), timestamps=stamps)
    est = PoseTrajectory3D(poses_se3=list(np.asarray(estimate, np.float64)), timestamps=stamps)
    rpe = {}
    for name, relation in (('trans', metrics.PoseRelation.translation_part),
                           ('rot', metrics.PoseRelation.rotation_angle_deg)):
        metric = metrics.RPE(relation, delta=1, delta_unit=metrics.Unit.frames, all_pairs=False)
        metric.process_data((ref, est))
        rpe[name] = metric.get_statistic(metrics.StatisticsType.rmse)
    _, _, scale = est.align(ref, correct_scale=correct_scale)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, est))
    return TrajectoryErrors(ape.get_statistic(metrics.StatisticsType.rmse), rpe['trans'], rpe['rot'], float(scale))
