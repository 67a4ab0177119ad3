"""depth_ros.slam_eval: odometry on depth_ros depth over a short synthetic walk with exact poses
(Open3D and evo, the `slam` extra; CI installs them, elsewhere the tests skip without them)."""
import numpy as np
import pytest

from depth_ros import slam_eval
from depth_ros.synthetic import pose_matrix

from ros_harness import require

WALK = dict(frames=12, size=(320, 240), walk=0.5, pan=0.1)   # 4.5 cm and up to 1.3 degrees per frame


@pytest.fixture(scope='module')
def walk() -> slam_eval.Walk:
    require('open3d')
    require('evo')
    return slam_eval.render_walk(**WALK)


def test_trajectory_errors_align_and_scale() -> None:
    """ATE aligns SE(3) (Sim(3) with scale) before measuring; RPE sees per-frame drift."""
    require('evo')
    truth = slam_eval.walk_poses(20)
    moved = np.stack([pose_matrix(x=1.0, z=-2.0, yaw=0.4) @ p for p in truth])  # another start frame
    errors = slam_eval.trajectory_errors(moved, truth)
    assert errors.ate < 1e-6 and errors.rpe_trans < 1e-6 and errors.rpe_rot < 1e-4
    scaled = truth.copy()
    scaled[:, :3, 3] *= 0.5
    assert slam_eval.trajectory_errors(scaled, truth).ate > 0.05
    sim3 = slam_eval.trajectory_errors(scaled, truth, correct_scale=True)
    assert sim3.ate < 1e-6 and sim3.scale == pytest.approx(2.0, rel=1e-6)
    drift = truth.copy()
    drift[:, 0, 3] += 0.01 * np.arange(20)   # 1 cm per frame sideways
    assert slam_eval.trajectory_errors(drift, truth).rpe_trans == pytest.approx(0.01, rel=1e-6)


def test_ground_truth_depth_tracks_the_walk(walk: slam_eval.Walk) -> None:
    """Exact depth: the pose conventions (synthetic engine, Open3D, evo) agree to millimetres."""
    run = slam_eval.estimate_depth(walk, slam_eval.GROUND_TRUTH)
    poses, lost = slam_eval.rgbd_odometry(walk, run.depth)
    errors = slam_eval.trajectory_errors(poses, walk.poses)
    assert lost == 0
    assert errors.ate < 0.02 and errors.rpe_trans < 0.02 and errors.rpe_rot < 0.5, errors
    np.testing.assert_allclose(poses[0], walk.poses[0])


def test_sgbm_depth_tracks_the_walk(walk: slam_eval.Walk) -> None:
    """The SGBM depth the stereo node publishes (disparity -> depth, clipped) keeps VO within 5 cm
    over the 0.5 m walk."""
    run = slam_eval.estimate_depth(walk, 'opencv_sgbm')
    assert 0.3 < run.density < 1.0  # SGBM leaves the left band and untextured pixels invalid
    poses, lost = slam_eval.rgbd_odometry(walk, run.depth)
    errors = slam_eval.trajectory_errors(poses, walk.poses)
    assert lost == 0 and errors.ate < 0.05, errors


def test_tsdf_map_lies_on_the_scene(walk: slam_eval.Walk) -> None:
    """Fused with exact depth and poses, the map's points project back onto the rendered depth of
    the first frame (world -> camera transform and units right) within a voxel."""
    voxel = 0.04
    points, colors = slam_eval.fuse_tsdf(walk, walk.depth, walk.poses, voxel=voxel)
    assert len(points) > 5000 and colors.shape == points.shape and 0 <= colors.min() and colors.max() <= 1
    camera = (np.linalg.inv(walk.poses[0]) @ np.c_[points, np.ones(len(points))].T).T[:, :3]
    ahead = camera[camera[:, 2] > 0.5]
    u = np.rint(walk.k[0, 0] * ahead[:, 0] / ahead[:, 2] + walk.k[0, 2]).astype(int)
    v = np.rint(walk.k[1, 1] * ahead[:, 1] / ahead[:, 2] + walk.k[1, 2]).astype(int)
    inside = (u >= 0) & (u < walk.camera.width) & (v >= 0) & (v < walk.camera.height)
    seen = walk.depth[0][v[inside], u[inside]] - ahead[inside, 2]
    assert inside.sum() > 2000
    # points hidden behind nearer surfaces sit farther than the rendered depth: use the visible ones
    assert np.median(np.abs(seen[seen > -3 * voxel])) < voxel


def test_walk_as_recording(tmp_path) -> None:
    """The walk written as a bag (for depth-ros-adapt) reads back with its pairs, rig, ground truth
    depth / disparity and poses unchanged."""
    require('rosbags')
    from depth_ros.recordings import bagio
    from depth_ros.recordings.frames import load_stereo_recording
    from depth_ros.recordings.record import rotation

    seq = slam_eval.render_walk(frames=3, size=(160, 120), walk=0.5, pan=0.1)
    slam_eval.write_bag(seq, tmp_path / 'walk')
    rec = load_stereo_recording(tmp_path / 'walk')
    assert len(rec) == 3 and rec.has_ground_truth
    assert rec.fx == pytest.approx(seq.camera.fx) and rec.baseline == pytest.approx(seq.camera.baseline)
    for i in range(3):
        np.testing.assert_array_equal(rec.left[i], seq.left[i])
        np.testing.assert_array_equal(rec.right[i], seq.right[i])
        np.testing.assert_array_equal(rec.depth[i], seq.depth[i])
        both = np.isfinite(rec.disparity[i])
        np.testing.assert_allclose(rec.disparity[i][both] * seq.depth[i][both], rec.fx * rec.baseline, rtol=1e-5)
    reader = bagio.open_reader(tmp_path / 'walk')  # PoseStamped is a typestore message: read it with rosbags
    try:
        conn = [c for c in reader.connections if c.topic == '/camera/ground_truth/pose']
        poses = [bagio.TYPESTORE.deserialize_cdr(raw, c.msgtype).pose for c, _, raw in reader.messages(conn)]
    finally:
        reader.close()
    for p, truth in zip(poses, seq.poses, strict=True):
        np.testing.assert_allclose([p.position.x, p.position.y, p.position.z], truth[:3, 3], atol=1e-9)
        q = p.orientation
        np.testing.assert_allclose(rotation((q.x, q.y, q.z, q.w)), truth[:3, :3], atol=1e-9)
