"""depth-ros-bag and depth-ros-record on small synthetic recordings (160x120, 4 frames), MCAP and
sqlite3: every frame answered with the node's outputs (stamps, frames, sizes), depth checked
against the recorded ground truth, input copied unchanged, deterministic output, bad input
counted and skipped, --force, topic discovery and pairing."""
from __future__ import annotations

import os
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

if os.environ.get('CI') != 'true':  # CI installs the test extra, which has rosbags: never skip there
    pytest.importorskip('rosbags')

from depth_ros import msgs  # noqa: E402
from depth_ros.recordings import bagio  # noqa: E402
from depth_ros.recordings.cli import bag_main, record_main  # noqa: E402
from depth_ros.recordings.offline import OfflineNode  # noqa: E402
from depth_ros.recordings.pairing import Cameras, DiscoveryError, discover, plan_frames  # noqa: E402
from depth_ros.recordings.record import quaternion, rotation  # noqa: E402
from depth_ros.frame_sources import SyntheticSource  # noqa: E402

FRAMES = 4
NS = '/cam'
LEFT = 'camera_left_optical_frame'
SGBM = ['--model', 'opencv_sgbm', '-p', 'sgbm.disparity_range=32']  # 160 px wide: fx 125 px, B 0.12 m


@pytest.fixture(scope='module', params=['mcap', 'sqlite3'])
def recording(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('rec') / 'synthetic'
    assert record_main([str(path), '--frames', str(FRAMES), '--size', '160x120', '--namespace', NS,
                        '--storage', request.param]) == 0
    return path


def by_topic(path: Path) -> dict[str, list]:
    out = defaultdict(list)
    for topic, _, msg in bagio.read_messages(path):
        out[topic].append(msg)
    return out


def raw_messages(path: Path) -> list[tuple[str, int, bytes]]:
    reader = bagio.open_reader(path)
    try:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
    finally:
        reader.close()


def stamp(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def rel_error(depth: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Median relative error and fraction of pixels with a depth."""
    ok = np.isfinite(depth) & np.isfinite(truth)
    return float(np.median(np.abs(depth[ok] - truth[ok]) / truth[ok])), float(ok.mean())


def test_recording_has_the_synthetic_stream_with_truth_and_poses(recording):
    topics = by_topic(recording)
    for name in ('left/image_rect', 'right/image_rect', 'left/camera_info', 'right/camera_info',
                 'ground_truth/depth', 'ground_truth/disparity'):
        assert len(topics[f'{NS}/{name}']) == FRAMES, name
    left, right = topics[f'{NS}/left/image_rect'], topics[f'{NS}/right/image_rect']
    truth = topics[f'{NS}/ground_truth/depth']
    assert [stamp(m) for m in left] == [stamp(m) for m in right] == [stamp(m) for m in truth]
    assert np.all(np.diff([stamp(m) for m in left]) == 100_000_000)  # 10 Hz
    source = SyntheticSource((160, 120), frames=FRAMES)
    source.wait()
    first = source.read()
    np.testing.assert_array_equal(msgs.image_to_rgb8(left[0]), first.left)
    np.testing.assert_array_equal(msgs.image_to_array(topics[f'{NS}/ground_truth/depth'][0]), first.depth)
    info = topics[f'{NS}/right/camera_info'][0]
    assert info.p[3] == pytest.approx(-info.p[0] * 0.12) and info.header.frame_id == 'camera_right_optical_frame'
    reader = bagio.open_reader(recording)  # poses and TF are typestore messages: read them with rosbags
    try:
        conns = {c.topic: c for c in reader.connections}
        assert conns['/tf_static'].ext.offered_qos_profiles[0].durability.name == 'TRANSIENT_LOCAL'
        poses = [bagio.TYPESTORE.deserialize_cdr(raw, c.msgtype).pose
                 for c, _, raw in reader.messages(connections=[conns[f'{NS}/ground_truth/pose']])]
        tf = [bagio.TYPESTORE.deserialize_cdr(raw, c.msgtype).transforms[0]
              for c, _, raw in reader.messages(connections=[conns['/tf']])]
    finally:
        reader.close()
    for pose, expected, t in zip(poses, source.poses, tf):
        q = (pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w)
        np.testing.assert_allclose(rotation(q), expected[:3, :3], atol=1e-9)
        np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z], expected[:3, 3], atol=1e-12)
        assert (t.header.frame_id, t.child_frame_id) == ('world', 'camera_link')
        assert t.transform.translation.z == pytest.approx(expected[2, 3])  # the optical frame sits at camera_link
    source.close()


def test_stereo_sgbm_every_frame_ground_truth_and_copy(recording, tmp_path, capsys):
    out = tmp_path / 'out'
    assert bag_main([str(recording), str(out), '--decimation', '2', '-q'] + SGBM) == 0
    summary = capsys.readouterr().out
    assert f'{FRAMES} frames in, {FRAMES} out, 0 skipped' in summary and 'frames/s' in summary
    topics = by_topic(out)
    left = topics[f'{NS}/left/image_rect']
    for name in ('depth/image', 'depth/camera_info', 'disparity'):
        got = topics[f'{NS}/{name}']
        assert [stamp(m) for m in got] == [stamp(m) for m in left], name
        assert {m.header.frame_id for m in got} == {LEFT}, name
    assert f'{NS}/points' not in topics  # opt-in
    node = OfflineNode(False, NS, {'model': 'opencv_sgbm', 'publish_points': False}, {})
    try:  # every output the node publishes (confidence too, where it has one), nothing else
        published = {p.topic_name for p in node.node.output_publishers()}
    finally:
        node.close()
    assert set(topics) - set(by_topic(recording)) == published and f'{NS}/disparity' in published
    for depth, info, disparity, truth in zip(topics[f'{NS}/depth/image'], topics[f'{NS}/depth/camera_info'],
                                             topics[f'{NS}/disparity'], topics[f'{NS}/ground_truth/depth']):
        assert (depth.width, depth.height, info.width, info.height) == (80, 60, 80, 60)
        assert info.k[0] == pytest.approx(125 / 2) and disparity.image.width == 160
        assert disparity.t == pytest.approx(0.12) and disparity.f == pytest.approx(125)
        error, coverage = rel_error(msgs.image_to_array(depth), msgs.image_to_array(truth)[::2, ::2])
        assert error < 0.03 and coverage > 0.6, (error, coverage)
    # the input is copied unchanged: same messages, bytes and log times
    copied = [m for m in raw_messages(out) if m[0] in {t for t, _, _ in raw_messages(recording)}]
    assert sorted(copied) == sorted(raw_messages(recording))


def test_network_output_is_deterministic_and_accurate(recording, tmp_path, capsys):
    runs = []
    for name in ('a', 'b'):
        assert bag_main([str(recording), str(tmp_path / name), '--model', 'anynet_spn8', '--points',
                         '--depth-format', '16UC1', '--storage', 'sqlite3', '-q']) == 0
        runs.append([m for m in raw_messages(tmp_path / name) if m[0].startswith(f'{NS}/') and
                     m[0].split('/', 2)[2] in ('depth/image', 'disparity', 'points', 'depth/camera_info')])
    assert len(runs[0]) == 4 * FRAMES and runs[0] == runs[1]
    topics = by_topic(tmp_path / 'a')
    for depth, truth, cloud in zip(topics[f'{NS}/depth/image'], topics[f'{NS}/ground_truth/depth'],
                                   topics[f'{NS}/points']):
        assert depth.encoding == '16UC1' and (cloud.height, cloud.width) == (120, 160)
        mm = msgs.image_to_array(depth).astype(np.float32)
        error, coverage = rel_error(np.where(mm > 0, mm / 1000, np.nan), msgs.image_to_array(truth))
        assert error < 0.12 and coverage > 0.9, (error, coverage)


def test_mono_under_the_left_camera(recording, tmp_path, capsys):
    assert bag_main([str(recording), str(tmp_path / 'mono'), '--mono', '--max-depth', '15', '-q']) == 0
    assert f'{NS}/left/image_rect (mono' in capsys.readouterr().out
    topics = by_topic(tmp_path / 'mono')
    depth = topics[f'{NS}/left/depth/image']
    assert [stamp(m) for m in depth] == [stamp(m) for m in topics[f'{NS}/left/image_rect']]
    assert {m.header.frame_id for m in depth} == {LEFT} and f'{NS}/disparity' not in topics
    values = msgs.image_to_array(depth[0])
    assert values.shape == (120, 160) and np.nanmax(values) <= 15 and np.isfinite(values).mean() > 0.5
    assert bag_main([str(recording), str(tmp_path / 'bad'), '--mono', '--stages', '2', '-q']) == 2
    assert 'no parameter' in capsys.readouterr().err


def test_bad_input_is_counted_and_skipped(recording, tmp_path, capsys):
    """Camera infos of frame 1 only (a lower rate): frame 0 has none at or before it; frame 1:
    wrong encoding; frame 2: no right image; frame 3: fine, with the infos of frame 1; then a
    3-byte left image and a pair whose left image is cut after its header (corrupt)."""
    import struct

    from sensor_msgs.msg import Image
    bad = tmp_path / 'bad'
    reader = bagio.open_reader(recording)
    writer = bagio.BagWriter(bad, 'mcap')
    stamps = sorted({stamp(m) for m in by_topic(recording)[f'{NS}/left/image_rect']})
    last = {}
    try:
        for conn, log_ns, raw in reader.messages():
            last[conn.topic] = (conn, log_ns, bytearray(raw))
            s = bagio.header_stamp(raw) if conn.topic.startswith(NS) else None
            if conn.topic.endswith('camera_info') and s != stamps[1]:
                continue
            if conn.topic == f'{NS}/right/image_rect' and s == stamps[2]:
                continue
            if conn.topic == f'{NS}/left/image_rect' and s == stamps[1]:
                msg = bagio.deserialize(raw, Image)
                msg.encoding = 'yuv422'
                writer.write(conn.topic, msg, log_ns)
                continue
            writer.copy(conn, log_ns, raw)
        (left, t, left_raw), (right, _, right_raw) = last[f'{NS}/left/image_rect'], last[f'{NS}/right/image_rect']
        writer.copy(left, t + 1, left_raw[:3])
        for raw in (left_raw, right_raw):
            struct.pack_into('<I', raw, 8, stamps[-1] % 10**9 + 1000)  # a new stamp: 1 us later
        writer.copy(left, t + 2, left_raw[:60])
        writer.copy(right, t + 2, right_raw)
    finally:
        writer.close()
        reader.close()
    assert bag_main([str(bad), str(tmp_path / 'out'), '-q'] + SGBM) == 0
    summary = capsys.readouterr().out
    assert f'{FRAMES + 1} frames in, 1 out' in summary
    for line in ('skipped 2 corrupt: 1 camera message(s) too short to hold a header',
                 'skipped 1 camera_info: no camera_info on /cam/left/camera_info',
                 "skipped 1 encoding: /cam/left/image_rect: expected a colour or grey image",
                 'skipped 1 unpaired: /cam/left/image_rect: 1 image(s) without an image of the same stamp'):
        assert line in summary, summary
    depth = [m for _, _, m in bagio.read_messages(tmp_path / 'out', {f'{NS}/depth/image'})]
    assert [stamp(m) for m in depth] == [stamps[3]]


def test_approximate_sync_pairs_unsynchronized_cameras(recording, tmp_path, capsys):
    """The right camera's stamps 3 ms late: unpaired with exact stamps, paired with --approximate-sync."""
    from sensor_msgs.msg import CameraInfo, Image
    late = tmp_path / 'late'
    reader = bagio.open_reader(recording)
    writer = bagio.BagWriter(late, 'mcap')
    try:
        for conn, log_ns, raw in reader.messages():
            if conn.topic.startswith(f'{NS}/right/'):
                msg = bagio.deserialize(raw, Image if conn.topic.endswith('image_rect') else CameraInfo)
                msg.header.stamp.nanosec += 3_000_000
                writer.write(conn.topic, msg, log_ns + 3_000_000)
            else:
                writer.copy(conn, log_ns, raw)
    finally:
        writer.close()
        reader.close()
    assert bag_main([str(late), str(tmp_path / 'exact'), '-q'] + SGBM) == 1
    assert f'0 out, {2 * FRAMES} skipped' in capsys.readouterr().out
    assert bag_main([str(late), str(tmp_path / 'approx'), '--approximate-sync', '--slop', '0.005', '-q'] + SGBM) == 0
    assert f'{FRAMES} out, 0 skipped' in capsys.readouterr().out
    topics = by_topic(tmp_path / 'approx')
    assert [stamp(m) for m in topics[f'{NS}/depth/image']] == [stamp(m) for m in topics[f'{NS}/left/image_rect']]


def test_existing_output_needs_force(recording, tmp_path, capsys):
    out = tmp_path / 'out'
    assert bag_main([str(recording), str(out), '-q'] + SGBM) == 0
    before = (out / 'metadata.yaml').stat().st_mtime_ns
    assert bag_main([str(recording), str(out), '-q'] + SGBM) == 2
    assert 'exists: remove it or pass --force' in capsys.readouterr().err
    assert (out / 'metadata.yaml').stat().st_mtime_ns == before
    assert bag_main([str(recording), str(out), '-q', '--force'] + SGBM) == 0
    plain = tmp_path / 'folder'
    plain.mkdir()
    assert bag_main([str(recording), str(plain), '-q', '--force'] + SGBM) == 2
    assert bag_main([str(recording), str(recording), '-q', '--force'] + SGBM) == 2
    assert 'is the input bag' in capsys.readouterr().err and recording.exists()
    assert bag_main([str(recording), str(tmp_path / 'x'), '--model', 'no_such_model', '-q']) == 2
    assert 'no_such_model' in capsys.readouterr().err and not (tmp_path / 'x').exists()


def test_console_commands(recording, tmp_path):
    result = subprocess.run(['depth-ros-bag', str(recording), str(tmp_path / 'o'), '--storage', 'sqlite3'] + SGBM,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f'{FRAMES}/{FRAMES} frames' in result.stderr and 'ETA' in result.stderr  # the progress line
    assert 'usage' in subprocess.run(['depth-ros-record', '--help'], capture_output=True, text=True).stdout


# --- discovery and pairing (no bag) --------------------------------------------------------------
IMG, INFO = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo'


def test_discovery_finds_a_pair_under_any_namespace_else_one_camera():
    pair = {'/a/b/left/image_rect': IMG, '/a/b/right/image_rect': IMG, '/a/b/left/camera_info': INFO,
            '/a/b/right/camera_info': INFO, '/a/b/left/image_raw': IMG, '/tf': 'tf2_msgs/msg/TFMessage'}
    found = discover(pair)
    assert found.images == ('/a/b/left/image_rect', '/a/b/right/image_rect') and found.namespace == '/a/b'
    assert discover({t.replace('/a/b', ''): m for t, m in pair.items()}).namespace == '/'
    assert discover(pair, mono=True).images == ('/a/b/left/image_rect',)
    single = {'/c/color/image_raw': IMG, '/c/color/camera_info': INFO, **pair}
    assert discover(single, mono=True) == Cameras(('/c/color/image_raw',), ('/c/color/camera_info',), '/c/color')
    assert discover({'/c/color/image_raw': IMG, '/c/color/camera_info': INFO}).images == ('/c/color/image_raw',)
    with pytest.raises(DiscoveryError, match='several'):
        discover({**pair, **{t.replace('/a/b', '/z'): m for t, m in pair.items()}})
    with pytest.raises(DiscoveryError, match='no camera found'):
        discover({'/x/image': IMG})  # no camera_info next to it


def test_pairing_exact_stamps_and_latest_camera_info():
    cams = Cameras(('/l', '/r'), ('/li', '/ri'), '/')
    plan = plan_frames(cams, [[10, 20, 30, 30], [10, 30, 40]], [[5], [10, 30]])
    assert [(f.stamps, f.info_stamps) for f in plan.frames] == [((10, 10), (5, 10)), ((30, 30), (5, 30))]
    assert plan.skipped == {'duplicate': 1, 'unpaired': 2}
    plan = plan_frames(cams, [[10, 20], [10, 20]], [[15, 20], [20]])
    assert [f.stamps for f in plan.frames] == [(20, 20)] and plan.skipped == {'camera_info': 1}
    # approximate_sync: closest pairs first, each image once, infos by each camera's own stamp
    plan = plan_frames(cams, [[100, 200, 300], [104, 197, 199, 420]], [[0], [0, 199]], slop=5)
    assert [(f.stamps, f.info_stamps) for f in plan.frames] == [((100, 104), (0, 0)), ((200, 199), (0, 199))]
    assert plan.skipped == {'unpaired': 3} and 'within 5e-09 s' in plan.reasons['unpaired']
    mono = plan_frames(Cameras(('/i',), ('/ii',), '/'), [[3, 1, 2]], [[2]])
    assert [f.stamps for f in mono.frames] == [(2,), (3,)] and mono.skipped == {'camera_info': 1}


def test_quaternion_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q *= np.sign(q[3])
        np.testing.assert_allclose(quaternion(rotation(tuple(q))), q, atol=1e-9)
