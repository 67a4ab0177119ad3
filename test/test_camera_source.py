"""camera_source: every contract topic with one stamp per frame, infos matching the images,
consistent ground truth, folder and video sources, and clear errors for bad parameters."""
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from depth_ros import msgs
from depth_ros.nodes.camera_source import CameraSource
from depth_ros.frame_sources import Calibration, FileSource, SourceError, SyntheticSource
from ros_harness import context_fixture  # noqa: F401 (the context fixture)

STEREO_TOPICS = ['left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info',
                 'image', 'camera_info']
TRUTH = ['ground_truth/depth', 'ground_truth/disparity']


def run_source(context, overrides: dict, topics: list[str], frames: int, timeout: float = 20.0):
    """Start camera_source with parameter overrides, collect messages of ``topics`` until each
    has ``frames`` messages; returns (node, {topic: [msg, ...]})."""
    source = CameraSource(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    listener = Node('listener', context=context)
    got: dict[str, list] = {t: [] for t in topics}
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    for t in topics:
        listener.create_subscription(CameraInfo if t.endswith('info') else Image, t,
                                     lambda m, t=t: got[t].append(m), qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(source)
    executor.add_node(listener)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and min(len(v) for v in got.values()) < frames:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        source.destroy_node()
        listener.destroy_node()
    assert min(len(v) for v in got.values()) >= frames, {t: len(v) for t, v in got.items()}
    return source, got


def by_stamp(got: dict[str, list]) -> dict[tuple[int, int], dict[str, object]]:
    """{stamp: {topic: msg}} of stamps every topic has."""
    frames: dict = {}
    for topic, messages in got.items():
        for m in messages:
            frames.setdefault((m.header.stamp.sec, m.header.stamp.nanosec), {})[topic] = m
    return {s: f for s, f in frames.items() if len(f) == len(got)}


def check_info(info: CameraInfo, image: Image, frame_id: str) -> np.ndarray:
    """Rectified-camera conventions; returns P (3x4)."""
    assert (info.width, info.height) == (image.width, image.height)
    assert info.header.frame_id == image.header.frame_id == frame_id
    assert info.distortion_model == 'plumb_bob' and list(info.d) == [0.0] * 5
    np.testing.assert_array_equal(np.reshape(info.r, (3, 3)), np.eye(3))
    p = np.reshape(info.p, (3, 4))
    np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), p[:, :3])
    return p


# ----------------------------------------------------------------------------- fixtures on disk
def write_calibration(path, k, p, size, d=(0, 0, 0, 0, 0), r=None):
    r = np.eye(3) if r is None else r
    data = {'image_width': size[0], 'image_height': size[1], 'camera_name': path.stem,
            'camera_matrix': {'rows': 3, 'cols': 3, 'data': np.ravel(k).tolist()},
            'distortion_model': 'plumb_bob',
            'distortion_coefficients': {'rows': 1, 'cols': 5, 'data': list(map(float, d))},
            'rectification_matrix': {'rows': 3, 'cols': 3, 'data': np.ravel(r).tolist()},
            'projection_matrix': {'rows': 3, 'cols': 4, 'data': np.ravel(p).tolist()}}
    path.write_text(yaml.safe_dump(data))


def random_images(n, w=40, h=30, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def write_images(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, rgb in enumerate(images):
        assert cv2.imwrite(str(folder / f'{i:04d}.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


K = np.array([[50.0, 0, 19.5], [0, 50.0, 14.5], [0, 0, 1]])


def stereo_folder(tmp_path, n=3):
    lefts, rights = random_images(n, seed=1), random_images(n, seed=2)
    write_images(tmp_path / 'left', lefts)
    write_images(tmp_path / 'right', rights)
    p = np.hstack([K, np.zeros((3, 1))])
    write_calibration(tmp_path / 'left.yaml', K, p, (40, 30))
    p_right = p.copy()
    p_right[0, 3] = -50.0 * 0.07
    write_calibration(tmp_path / 'right.yaml', K, p_right, (40, 30))
    return lefts, rights


# ----------------------------------------------------------------------------- synthetic
def test_synthetic_source_publishes_every_topic_with_one_stamp_and_exact_truth(context):
    node, got = run_source(context, {'width': 96, 'height': 64, 'frames': 3, 'rate': 40.0, 'seed': 5,
                                     'baseline': 0.1}, STEREO_TOPICS + TRUTH, 4)
    stamps = {t: [(m.header.stamp.sec, m.header.stamp.nanosec) for m in v[:4]] for t, v in got.items()}
    assert all(s == stamps['left/image_rect'] for s in stamps.values())  # same stamps, same order
    assert len(set(stamps['image'])) == 4
    fx = 500.0 * 96 / 640  # the synthetic camera's focal length at this width
    for f in by_stamp(got).values():
        p_left = check_info(f['left/camera_info'], f['left/image_rect'], 'camera_left_optical_frame')
        p_right = check_info(f['right/camera_info'], f['right/image_rect'], 'camera_right_optical_frame')
        check_info(f['camera_info'], f['image'], 'camera_left_optical_frame')
        np.testing.assert_allclose(p_left[:, :3], [[fx, 0, 47.5], [0, fx, 31.5], [0, 0, 1]])
        assert p_left[0, 3] == 0 and p_right[0, 3] == pytest.approx(-fx * 0.1)
        np.testing.assert_array_equal(p_right[:, :3], p_left[:, :3])
        depth = msgs.image_to_array(f['ground_truth/depth'])
        disparity = msgs.image_to_array(f['ground_truth/disparity'])
        for m in (f['ground_truth/depth'], f['ground_truth/disparity']):
            assert m.encoding == '32FC1' and (m.width, m.height) == (96, 64)
            assert m.header.frame_id == 'camera_left_optical_frame'
        valid = np.isfinite(depth)
        assert valid.mean() > 0.5 and np.array_equal(valid, np.isfinite(disparity))
        np.testing.assert_allclose(depth[valid] * disparity[valid], fx * 0.1, rtol=1e-5)
        assert f['left/image_rect'].encoding == f['right/image_rect'].encoding == 'rgb8'
        assert bytes(f['left/image_rect'].data) != bytes(f['right/image_rect'].data)
    deadline = time.monotonic() + 10
    while node.source.rendered < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert node.source.rendered == 3  # the rest of the loop renders in the background


def test_synthetic_loop_plays_forwards_then_backwards():
    src = SyntheticSource((48, 32), frames=3, seed=1)
    src._thread.join()
    depths = [src.read().depth for _ in range(6)]
    order = [[np.array_equal(d, e, equal_nan=True) for e in depths[:3]].index(True) for d in depths]
    assert order == [0, 1, 2, 1, 0, 1]
    assert not np.array_equal(depths[0], depths[2], equal_nan=True)  # the camera moves
    src.close()


# ----------------------------------------------------------------------------- folder / video
def test_stereo_folder_publishes_the_files_with_their_calibration(context, tmp_path):
    lefts, rights = stereo_folder(tmp_path)
    _, got = run_source(context, {'source': 'folder', 'path': str(tmp_path), 'width': 0, 'height': 0,
                                  'rate': 50.0, 'loop': False}, STEREO_TOPICS, 3)
    frames = by_stamp(got)
    assert len(frames) == 3 and all(len(got[t]) == 3 for t in STEREO_TOPICS)  # loop false: exactly 3
    for i, stamp in enumerate(sorted(frames)):
        f = frames[stamp]
        np.testing.assert_array_equal(msgs.image_to_array(f['left/image_rect']), lefts[i])
        np.testing.assert_array_equal(msgs.image_to_array(f['right/image_rect']), rights[i])
        assert f['image'].encoding == 'rgb8' and bytes(f['image'].data) == bytes(f['left/image_rect'].data)
        p_left = check_info(f['left/camera_info'], f['left/image_rect'], 'camera_left_optical_frame')
        p_right = check_info(f['right/camera_info'], f['right/image_rect'], 'camera_right_optical_frame')
        np.testing.assert_allclose(p_left[:, :3], K)
        assert p_left[0, 3] == 0 and p_right[0, 3] == pytest.approx(-50.0 * 0.07)


def test_mono_folder_resized_with_intrinsics_scaled(context, tmp_path):
    write_images(tmp_path, random_images(2, seed=3))
    write_calibration(tmp_path / 'ost.yaml', K, np.hstack([K, np.zeros((3, 1))]), (40, 30))
    node, got = run_source(context, {'source': 'folder', 'path': str(tmp_path), 'width': 80, 'height': 60,
                                     'rate': 50.0}, ['image', 'camera_info'], 4)
    assert set(node.pubs) == {'image', 'camera_info'}  # mono: no stereo or ground-truth topics
    for image, info in zip(got['image'], got['camera_info']):
        p = check_info(info, image, 'camera_left_optical_frame')
        assert (image.width, image.height) == (80, 60)
        np.testing.assert_allclose(p[:, :3], [[100, 0, 39.5], [0, 100, 29.5], [0, 0, 1]])  # (c+0.5)*2-0.5


def test_video_source_plays_frames_in_order_and_loops(context, tmp_path):
    path = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (64, 48))
    colours = [(200, 20, 20), (20, 200, 20), (20, 20, 200)]
    for c in colours:
        writer.write(np.full((48, 64, 3), c[::-1], np.uint8))  # BGR
    writer.release()
    _, got = run_source(context, {'source': 'video', 'path': str(path), 'width': 0, 'height': 0, 'fx': 60.0,
                                  'rate': 50.0}, ['image', 'camera_info'], 5)
    seen = [msgs.image_to_array(m).reshape(-1, 3).mean(axis=0) for m in got['image'][:5]]
    expected = colours + colours[:2]  # looped
    for mean, colour in zip(seen, expected):
        np.testing.assert_allclose(mean, colour, atol=8)  # JPEG compression
    p = check_info(got['camera_info'][0], got['image'][0], 'camera_left_optical_frame')
    np.testing.assert_allclose(p[:, :3], [[60, 0, 31.5], [0, 60, 23.5], [0, 0, 1]])


def test_unreadable_file_is_reported_and_skipped(tmp_path):
    write_images(tmp_path, random_images(3, seed=4))
    (tmp_path / '0001.png').write_bytes(b'not a png')  # the middle file is corrupt
    src = FileSource('folder', str(tmp_path), fx=40.0)
    assert src.read() is not None
    with pytest.raises(SourceError, match='cannot read image .*0001.png'):
        src.read()
    assert src.read() is not None and src.read() is None
    (tmp_path / '0000.png').write_bytes(b'')
    with pytest.raises(SourceError, match='cannot read image .*0000.png'):
        FileSource('folder', str(tmp_path), fx=40.0)


def test_rectify_maps_raw_images_onto_the_rectified_projection(tmp_path):
    """A raw image with K and a rectified P of half the focal length: rectification shrinks the
    view about the centre by 2 (no distortion, R = I), which the published camera then describes."""
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[10:20, 15:25] = 255  # 10 x 10 square at the centre
    write_images(tmp_path, [rgb])
    p = np.array([[25.0, 0, 19.5, 0], [0, 25.0, 14.5, 0], [0, 0, 1, 0]])
    write_calibration(tmp_path / 'ost.yaml', K, p, (40, 30), d=(0.0, 0, 0, 0, 0))
    src = FileSource('folder', str(tmp_path), rectify=True)
    out = src.read().left
    assert 9 <= (out[..., 0] > 128).sum() <= 36  # about 5 x 5 px
    np.testing.assert_allclose(src.camera.p[:, :3], p[:, :3])
    raw = FileSource('folder', str(tmp_path))
    np.testing.assert_array_equal(raw.read().left, rgb)
    assert not raw.unrectified  # D = 0, R = I: nothing to rectify
    write_calibration(tmp_path / 'ost.yaml', K, p, (40, 30), d=(0.1, 0, 0, 0, 0))
    assert FileSource('folder', str(tmp_path)).unrectified


# ----------------------------------------------------------------------------- bad parameters
@pytest.mark.parametrize('kwargs, message', [
    ({'kind': 'folder', 'path': ''}, 'needs the path parameter'),
    ({'kind': 'folder', 'path': '/nonexistent/frames'}, 'does not exist'),
    ({'kind': 'video', 'path': 'EMPTY_DIR'}, 'cannot decode|no frames|cannot read'),
    ({'kind': 'folder', 'path': 'EMPTY_DIR'}, 'no images'),
])
def test_bad_source_paths_raise_clear_errors(tmp_path, kwargs, message):
    kwargs = {k: (str(tmp_path) if v == 'EMPTY_DIR' else v) for k, v in kwargs.items()}
    with pytest.raises(SourceError, match=message):
        FileSource(kwargs.pop('kind'), kwargs.pop('path'), **kwargs)


def test_stereo_folder_errors(tmp_path):
    write_images(tmp_path / 'left', random_images(2))
    write_images(tmp_path / 'right', random_images(1))
    with pytest.raises(SourceError, match='left/ has 2 images and right/ has 1'):
        FileSource('folder', str(tmp_path))
    write_images(tmp_path / 'right', random_images(2))
    with pytest.raises(SourceError, match='set the fx .* and baseline'):
        FileSource('folder', str(tmp_path))
    src = FileSource('folder', str(tmp_path), fx=50.0, baseline=0.1)
    assert src.stereo and src.camera.baseline == 0.1
    (tmp_path / 'left.yaml').write_text('camera_matrix: {rows: 3, cols: 3, data: [1, 2]}\nimage_width: 4\n')
    (tmp_path / 'right.yaml').write_text('')
    with pytest.raises(SourceError, match='left.yaml: camera_matrix must be a 3x3 matrix'):
        FileSource('folder', str(tmp_path))
    stereo_folder(tmp_path, 2)
    p = np.hstack([K, np.zeros((3, 1))])
    write_calibration(tmp_path / 'right.yaml', K, p, (40, 30))  # Tx = 0
    with pytest.raises(SourceError, match='no baseline'):
        FileSource('folder', str(tmp_path))


def test_calibration_yaml_round_trip(tmp_path):
    p = np.hstack([K, [[-3.5], [0], [0]]])
    write_calibration(tmp_path / 'c.yaml', K, p, (40, 30), d=(0.1, -0.2, 0, 0, 0.01))
    cal = Calibration.load(tmp_path / 'c.yaml')
    np.testing.assert_allclose(cal.k, K)
    np.testing.assert_allclose(cal.p, p)
    np.testing.assert_allclose(cal.d, [0.1, -0.2, 0, 0, 0.01])
    assert cal.size == (40, 30) and cal.raw
    (tmp_path / 'bad.yaml').write_text('just: text\n')
    with pytest.raises(SourceError, match='not a camera_calibration YAML'):
        Calibration.load(tmp_path / 'bad.yaml')


def test_out_of_range_parameters_are_rejected_with_a_message(context, capfd):
    node = CameraSource(context=context, parameter_overrides=[
        Parameter('rate', value=-5.0), Parameter('source', value='camera'), Parameter('frames', value=1),
        Parameter('width', value=96), Parameter('height', value=64)])
    try:
        assert node.get_parameter('rate').value == 10.0
        assert isinstance(node.source, SyntheticSource)  # the default, not 'camera'
        result = node.set_parameters([Parameter('rate', value=0.0)])[0]
        assert not result.successful and 'rate' in result.reason
        assert node.set_parameters([Parameter('rate', value=25.0)])[0].successful
    finally:
        node.destroy_node()
    err = capfd.readouterr().err
    assert 'rate' in err and 'source must be one of synthetic, folder, video' in err
    with pytest.raises(SourceError, match='both be 0'):
        CameraSource(context=context, parameter_overrides=[Parameter('width', value=0)])


def test_executable_exits_with_a_clear_message(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, '-m', 'depth_ros.nodes.camera_source', '--ros-args',
                        '-p', 'source:=folder', '-p', f'path:={tmp_path / "missing"}'],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1
    assert 'camera_source: path' in r.stderr and 'does not exist' in r.stderr
    assert 'Traceback' not in r.stderr


def test_config_yaml_lists_every_parameter_with_its_default_and_matches_in_a_namespace(context, tmp_path):
    from pathlib import Path

    path = Path(__file__).parent.parent / 'config' / 'camera_source.yaml'
    config = yaml.safe_load(path.read_text())
    (key,) = config
    values = config[key]['ros__parameters']
    small = ['-p', 'width:=48', '-p', 'height:=32', '-p', 'frames:=1']
    for cli in (['--ros-args', *small], ['--ros-args', '--params-file', str(path), *small]):
        node = CameraSource(context=context, cli_args=cli)
        try:
            declared = {n for n in node._parameters if n not in ('use_sim_time', 'start_type_description_service')}
            assert declared == set(values)
            for name, value in values.items():  # the file holds the declared defaults
                if name not in ('width', 'height', 'frames'):
                    assert node.get_parameter(name).value == value, name
        finally:
            node.destroy_node()
    # the key also matches the node in a namespace (ros2 launch ... namespace:=cam): a changed copy is used
    changed = tmp_path / 'camera_source.yaml'
    changed.write_text(yaml.safe_dump({key: {'ros__parameters': {**values, 'rate': 7.0, 'seed': 5}}}))
    node = CameraSource(context=context, cli_args=['--ros-args', '-r', '__ns:=/cam', '--params-file', str(changed),
                                                   *small])
    try:
        assert node.get_fully_qualified_name() == '/cam/camera_source'
        assert (node.get_parameter('rate').value, node.get_parameter('seed').value) == (7.0, 5)
    finally:
        node.destroy_node()


def test_static_tf_when_tf2_ros_exists_and_diagnostics(context, monkeypatch):
    """tf2_ros is not installable here: a stand-in records what the node would broadcast."""
    import types

    from diagnostic_msgs.msg import DiagnosticArray

    sent = []
    fake = types.ModuleType('tf2_ros')
    fake.StaticTransformBroadcaster = lambda node: types.SimpleNamespace(sendTransform=sent.extend)
    monkeypatch.setitem(sys.modules, 'tf2_ros', fake)
    node = CameraSource(context=context, parameter_overrides=[
        Parameter('width', value=48), Parameter('height', value=32), Parameter('frames', value=1),
        Parameter('baseline', value=0.2), Parameter('rate', value=20.0)])
    assert [(t.header.frame_id, t.child_frame_id) for t in sent] == [
        ('camera_link', 'camera_left_optical_frame'), ('camera_link', 'camera_right_optical_frame')]
    for t, y in zip(sent, (0.0, -0.2)):  # the right camera is 0.2 m to the right: -y in camera_link
        tr = t.transform.translation
        assert (tr.x, tr.y, tr.z) == (0.0, y, 0.0)
        q = t.transform.rotation
        # REP 103: optical z (forward) = body x, optical x (right) = body -y, optical y (down) = body -z
        w, x, y_, z = q.w, q.x, q.y, q.z
        rot = np.array([[1 - 2 * (y_ * y_ + z * z), 2 * (x * y_ - z * w), 2 * (x * z + y_ * w)],
                        [2 * (x * y_ + z * w), 1 - 2 * (x * x + z * z), 2 * (y_ * z - x * w)],
                        [2 * (x * z - y_ * w), 2 * (y_ * z + x * w), 1 - 2 * (x * x + y_ * y_)]])
        np.testing.assert_allclose(rot @ [0, 0, 1], [1, 0, 0], atol=1e-12)
        np.testing.assert_allclose(rot @ [1, 0, 0], [0, -1, 0], atol=1e-12)
        np.testing.assert_allclose(rot @ [0, 1, 0], [0, 0, -1], atol=1e-12)
    listener = Node('diag_listener', context=context)
    got = []
    listener.create_subscription(DiagnosticArray, '/diagnostics', got.append, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(listener)
    deadline = time.monotonic() + 10
    try:
        while not got and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        listener.destroy_node()
    status = got[0].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.name.startswith('camera_source') and values['source'] == 'synthetic'
    assert float(values['output rate (Hz)']) > 5 and values['baseline (m)'] == '0.2000'
