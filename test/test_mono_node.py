"""mono_depth_node over DDS with a tiny untrained exported network (tests only): output conventions,
focal scaling of metric depth, camera_info handling, decimation, a missing model, bad input."""
from __future__ import annotations

import re
import time
from contextlib import ExitStack

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depth_ros import geometry
from depth_ros.nodes.diagnostics import ERROR, WARN
from depth_ros.nodes.mono import MonoDepthNode
from ros_harness import Rig, as_array, camera_info, header, image, node_with_probe, overrides, require, wait_until
from ros_harness import ros_fixture  # noqa: F401 (the ros fixture)

W, H, FX = 160, 120, 200.0
FRAME = 'camera_left_optical_frame'
OUTPUTS = {'depth/image': Image, 'depth/camera_info': CameraInfo, 'points': PointCloud2}
IMAGE = (np.random.default_rng(0).random((H, W, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    """Untrained fastdepth exported at 64x96 with a canonical focal length of 100 px."""
    export = require('depth_ros.nets.export')
    return str(export.export_model('fastdepth', tmp_path_factory.mktemp('models'), name='tiny_mono',
                                   input_size=(64, 96), card={'f_canonical': 100.0}))


class MonoRig(Rig):
    outputs = OUTPUTS

    def send(self, info: CameraInfo | None = None, img: Image | None = None):
        """Publish camera_info (if given) then an image with a fresh stamp; returns its header."""
        hdr = header(self.next_stamp(), FRAME)
        if info is not None:
            info.header = hdr
            self.probe.publish('camera_info', info)
        msg = img or image(IMAGE, 'rgb8', hdr)
        msg.header = hdr
        self.probe.publish('image', msg)
        return hdr


@pytest.fixture
def make_rig(ros):
    with ExitStack() as stack:
        def make(**params):
            node = MonoDepthNode(parameter_overrides=overrides(**params))
            return MonoRig(node, stack.enter_context(node_with_probe(node, OUTPUTS, 'mono_probe')))

        yield make


def test_outputs_and_focal_scaling(make_rig, tiny_model):
    rig = make_rig(model=tiny_model, min_depth=0.0, max_depth=100.0)
    assert rig.node.estimator.name == 'tiny_mono' and not rig.node.estimator.trained
    status = rig.node.diagnostics.status()
    assert status.level[0] == WARN and 'UNTRAINED' in status.message  # said loudly, shown in diagnostics
    out = rig.frame(info=camera_info(W, H, FX, frame_id=FRAME))
    stamp = out['depth/image'].header.stamp
    assert all(m.header.frame_id == FRAME and m.header.stamp == stamp for m in out.values())
    depth = as_array(out['depth/image'])
    assert out['depth/image'].encoding == '32FC1' and depth.shape == (H, W) and np.isfinite(depth).all()
    info = out['depth/camera_info']
    assert (info.width, info.height) == (W, H) and list(info.k) == list(camera_info(W, H, FX).k)
    cloud = out['points']
    assert (cloud.height, cloud.width, [f.name for f in cloud.fields]) == (H, W, ['x', 'y', 'z', 'rgb'])
    pts = require('sensor_msgs_py.point_cloud2').read_points(cloud, skip_nans=False).reshape(H, W)
    np.testing.assert_array_equal(pts['z'], depth)
    np.testing.assert_array_equal(pts['rgb'].view(np.uint32), geometry.pack_rgb(IMAGE).view(np.uint32))
    # metric depth scales with the focal length: doubling fx doubles every depth
    doubled = as_array(rig.frame(['depth/image'], info=camera_info(W, H, 2 * FX, frame_id=FRAME))['depth/image'])
    np.testing.assert_allclose(doubled, 2 * depth, rtol=1e-5)


def test_camera_info_handling_and_decimation(make_rig, tiny_model):
    rig = make_rig(model=tiny_model)
    problems = rig.node.errors.problems
    wait_until(lambda: rig.send() and 'camera_info' in problems, period=0.2)
    assert 'waiting for camera_info on /camera_info' in problems['camera_info'].message
    assert rig.probe.count('depth/image') == 0
    # issue 12: a wait is not an error (the default demo reported 'errors 1' for it)
    values = {kv.key: kv.value for kv in rig.node.diagnostics.status().values}
    assert values['errors'] == '0' and values['last error'] == '', values
    zero = camera_info(W, H, 0.0, frame_id=FRAME)
    zero.p = [0.0] * 12
    unsupported = Image(height=H, width=W, encoding='mono16x', step=2 * W, data=bytes(2 * W * H))
    cases = [('intrinsics', dict(info=zero), 'no valid intrinsics'),
             ('info_size', dict(info=camera_info(2 * W, 2 * H, FX)), 'camera_info is 320x240 but the image is 160x120'),
             ('encoding', dict(info=zero, img=unsupported), "'mono16x'")]  # every info invalid: no output
    for cause, kwargs, words in cases:
        wait_until(lambda: rig.send(**kwargs) and cause in problems, period=0.2)
        assert words in problems[cause].message, problems[cause].message
        assert '/camera_info' in problems[cause].message or '/image' in problems[cause].message
        assert rig.probe.count('depth/image') == 0
    full = rig.frame(info=camera_info(W, H, FX, frame_id=FRAME))
    assert all(r.successful for r in rig.set(decimation=2))
    out = rig.frame()  # the cached camera_info is used: no new one is sent
    depth, info = as_array(out['depth/image']), out['depth/camera_info']
    assert depth.shape == (H // 2, W // 2) == (info.height, info.width)
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)),
                               geometry.decimate_intrinsics(np.reshape(full['depth/camera_info'].k, (3, 3)), 2))
    np.testing.assert_array_equal(depth, geometry.decimate(as_array(full['depth/image']), 2))
    assert (out['points'].height, out['points'].width) == (H // 2, W // 2)


def test_missing_model_keeps_running_until_a_valid_one_is_set(make_rig, tiny_model):
    rig = make_rig(model='no_such_model')
    assert rig.node.estimator is None
    status = rig.node.diagnostics.status()
    assert status.level[0] == ERROR and "model 'no_such_model' could not be loaded" in status.message
    # issue 12: the message listed stereo models as shipped models
    assert 'shipped mono models: ' in status.message and 'mbv2_fbnet_kd' in status.message
    assert 'anynet' not in status.message, status.message
    info = camera_info(W, H, FX, frame_id=FRAME)
    wait_until(lambda: rig.send(info=info) and rig.node.errors.problems['model'].count > 1, period=0.2)
    assert 'no model loaded' in rig.node.errors.problems['model'].message
    (bad,) = rig.set(input_size=[10, 10])
    assert not bad.successful and 'input_size' in bad.reason
    (ok,) = rig.set(model=tiny_model)
    assert ok.successful, ok.reason
    rig.frame(['depth/image'], info=info)
    assert rig.node.diagnostics.info['model'] == 'tiny_mono'


def test_depth_outside_the_range_and_lost_images_are_said(make_rig, tiny_model):
    """Issue 12: a long lens pushed ~95 % of the metric depth above max_depth, published as NaN
    without a word; images lost or late in DDS while camera_info arrives were not diagnosed."""
    rig = make_rig(model=tiny_model)
    problems = rig.node.errors.problems
    long_lens = camera_info(W, H, 1000 * FX, frame_id=FRAME)  # depth scales with fx: far beyond 20 m
    depth = as_array(rig.frame(['depth/image'], info=long_lens)['depth/image'])
    assert np.isnan(depth).mean() > 0.5
    message = wait_until(lambda: 'range' in problems and problems['range'].message)
    assert '% of the depth image lies outside [min_depth 0.1 m, max_depth 20.0 m]' in message, message
    # camera_info keeps arriving, images stop: within 5 s the node says why and how to fix it
    info = camera_info(W, H, FX, frame_id=FRAME)

    def only_info():
        info.header = header(time.time_ns(), FRAME)
        rig.probe.publish('camera_info', info)
        return 'input_qos' in problems and problems['input_qos']
    problem = wait_until(only_info, timeout=6.0, period=0.1)
    assert 'no image on /image' in problem.message and 'FASTDDS_BUILTIN_TRANSPORTS' in problem.message
    assert 'input_reliability:=reliable' in problem.message
    status = rig.node.diagnostics.status()
    assert 'no image on /image' in status.message or 'no image on /image' in dict(
        (kv.key, kv.value) for kv in status.values)['last error']

    def late_images():  # images 3 s older than their camera_info
        now = time.time_ns()
        info.header = header(now, FRAME)
        rig.probe.publish('camera_info', info)
        rig.probe.publish('image', image(IMAGE, 'rgb8', header(now - 3_000_000_000, FRAME)))
        message = problems['input_qos'].message  # the median age of the last 10 images: 3 s once all are late
        return re.search(r'images on /image arrive 3\.[0-2] s after their stamp', message) and message
    wait_until(late_images, timeout=8.0, period=0.1)


def test_negative_stamps_and_crashing_callbacks_do_not_take_the_node_down(make_rig, tiny_model):
    rig = make_rig(model=tiny_model)
    info = camera_info(W, H, FX, frame_id=FRAME)
    rig.frame(['depth/image'], info=info)
    bad = header(0, FRAME)
    bad.stamp.sec = -3
    wait_until(lambda: rig.probe.publish('image', image(IMAGE, 'rgb8', bad)) or 'stamp' in rig.node.errors.problems)
    assert 'negative' in rig.node.errors.problems['stamp'].message
    on_input = rig.node.on_input
    rig.node.on_input = lambda *msgs: 1 / 0  # any exception in a callback is caught, logged and counted
    wait_until(lambda: rig.send(info=info) and 'internal' in rig.node.errors.problems, period=0.2)
    assert 'ZeroDivisionError' in rig.node.errors.problems['internal'].message
    rig.node.on_input = on_input
    rig.frame(['depth/image'], info=info)
