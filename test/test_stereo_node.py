"""stereo_depth_node over DDS (in-process, SingleThreadedExecutor as run_node spins): ROS conventions of every output,
accuracy of SGBM depth and of the default (shipped, trained AnyNet) against the synthetic scene's
exact depth, run-time parameters, lazy subscription, overload, diagnostics, and every kind of bad
input followed by a good frame. Most tests pin model:=opencv_sgbm (fast, exactly known output)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from depth_ros import geometry
from depth_ros.model_card import DEFAULT_STEREO
from depth_ros.nodes.stereo import StereoDepthNode
from depth_ros.synthetic import StereoCamera, random_scene, render_stereo
from ros_harness import (Probe, Rig, as_array, camera_info, header, image, node_with_probe, overrides, require,
                         spinning, wait_until)
from ros_harness import ros_fixture  # noqa: F401 (the ros fixture)

W, H, FX, B = 640, 480, 500.0, 0.12
LEFT, RIGHT = 'camera_left_optical_frame', 'camera_right_optical_frame'
OUTPUTS = {'depth/image': Image, 'depth/camera_info': CameraInfo, 'points': PointCloud2,
           'disparity': DisparityImage}


@pytest.fixture(scope='module')
def scene():
    """One 640x480 synthetic pair with exact depth (seed 1: boxes, spheres, planes, 1.6-8 m)."""
    cam = StereoCamera(width=W, height=H, fx=FX, fy=FX, cx=(W - 1) / 2, cy=(H - 1) / 2, baseline=B)
    return render_stereo(random_scene(seed=1), cam)


class StereoRig(Rig):
    """A stereo node and a probe spinning together; ``send`` publishes one input set."""

    outputs = OUTPUTS

    def __init__(self, node: StereoDepthNode, probe: Probe, scene: dict) -> None:
        super().__init__(node, probe)
        self.scene = scene

    def send(self, *, left=None, right=None, left_info=None, right_info=None, right_offset_ns=0,
             left_encoding='rgb8', small=False):
        """Publish left/right image + info with a fresh stamp (the left header is returned).
        ``small``: the pair decimated to 320x240 (cheaper; for robustness tests)."""
        s = 2 if small else 1
        stamp = self.next_stamp()
        hl, hr = header(stamp, LEFT), header(stamp + right_offset_ns, RIGHT)
        left = self.scene['left'][::s, ::s] if left is None else left
        right = self.scene['right'][::s, ::s] if right is None else right
        fx = FX / s
        left_info = left_info or camera_info(W // s, H // s, fx, 0.0, LEFT)
        right_info = right_info or camera_info(W // s, H // s, fx, -fx * B, RIGHT)
        left_info.header, right_info.header = hl, hr
        for topic, msg in (('left/camera_info', left_info), ('right/camera_info', right_info),
                           ('right/image_rect', image(np.ascontiguousarray(right), 'rgb8', hr)),
                           ('left/image_rect', left if isinstance(left, Image) else
                            image(np.ascontiguousarray(left), left_encoding, hl))):
            if isinstance(msg, Image):
                msg.header = hl if topic.startswith('left') else hr
            self.probe.publish(topic, msg)
        return hl


@pytest.fixture
def rig(ros, scene, request):
    params = {'model': 'opencv_sgbm', **getattr(request, 'param', {})}
    node = StereoDepthNode(parameter_overrides=overrides(**{k: v for k, v in params.items() if v is not None}))
    # confidence is listened to with AnyNet only: a subscriber makes SGBM run its left-right check
    extra = {'confidence': Image} if params['model'] is None else {}
    with node_with_probe(node, {**OUTPUTS, **extra, '/diagnostics': DiagnosticArray}, 'stereo_probe') as probe:
        yield StereoRig(node, probe, scene)


def _relative_error(depth: np.ndarray, scene: dict) -> tuple[np.ndarray, np.ndarray]:
    """|depth - gt| / gt and the pixels the right camera sees."""
    gt = scene['depth']
    return np.abs(depth - gt) / gt, ~scene['occlusion'] & np.isfinite(gt)


@pytest.mark.parametrize('rig', [{'model': None}], indirect=True)
def test_default_model_is_the_trained_anynet_with_spn(rig, scene):
    """Without a model parameter the node runs models/anynet_lite (all 4 stages) fused with SGBM
    matched at half size: dense depth within a few percent of the truth (the network alone
    measured median 2.1 %, 77 % of visible pixels within 5 %); stage 1 of the network alone is
    coarser (median 9.6 %)."""
    est = rig.node.estimator
    assert (est.name, est.available_stages, est.stages) == ('anynet_lite', [1, 2, 3, 4], 4)
    assert (est.fusion, est._fusion.scale) == ('sgbm', 0.5)  # noqa: SLF001
    out = rig.frame()
    depth, disp = as_array(out['depth/image']), out['disparity']
    rel, visible = _relative_error(depth, scene)
    assert np.isfinite(depth).mean() > 0.95  # confidence_threshold masks a few pixels
    assert np.nanmedian(rel[visible]) < 0.035 and (rel[visible] < 0.05).mean() >= 0.65
    assert (disp.min_disparity, disp.max_disparity) == (0.0, 192.0)
    assert all(r.successful for r in rig.set(stages=1, fusion='none'))
    rel1, _ = _relative_error(as_array(rig.frame(['depth/image'])['depth/image']), scene)
    assert rig.node.estimator.stages == 1 and np.nanmedian(rel1[visible]) > 2 * np.nanmedian(rel[visible])
    # issue 12: switching to a model without stages was refused while stages was not 0
    assert all(r.successful for r in rig.set(stages=2))
    assert all(r.successful for r in rig.set(model='opencv_bm'))
    assert rig.node.estimator.name == 'opencv_bm' and rig.node.params.get('stages') == 2
    assert all(r.successful for r in rig.set(stages=3))  # ignored by a one-stage model
    assert not rig.set(stages=5)[0].successful  # out of range still refused


def test_outputs_follow_ros_conventions_and_match_ground_truth(rig, scene):
    out = rig.frame()
    stamp = out['depth/image'].header.stamp
    for msg in out.values():
        assert msg.header.frame_id == LEFT and msg.header.stamp == stamp
    depth_msg, info, cloud, disp = out['depth/image'], out['depth/camera_info'], out['points'], out['disparity']
    assert (depth_msg.encoding, depth_msg.width, depth_msg.height) == ('32FC1', W, H)
    assert (info.width, info.height) == (W, H)
    np.testing.assert_allclose(info.k, camera_info(W, H, FX).k)
    depth = as_array(depth_msg)
    valid = np.isfinite(depth)
    assert not np.any(depth == 0) and 0.7 < valid.mean() < 1.0  # NaN marks invalid, never 0

    # accuracy against the exact depth on pixels the right camera sees (measured: median 1.2 %,
    # 73 % within 5 %; SGBM leaves ~20 % of them invalid, mostly weak texture and borders)
    rel, visible = _relative_error(depth, scene)
    assert np.median(rel[visible & valid]) < 0.03
    assert (rel[visible] < 0.05).mean() >= 0.65

    # DisparityImage: geometry, searched range, invalid pixels below min_disparity
    assert disp.f == pytest.approx(FX) and disp.t == pytest.approx(B)
    assert (disp.min_disparity, disp.max_disparity, disp.delta_d) == (0.0, 127.0, 1 / 16)
    d = as_array(disp.image)
    assert disp.image.encoding == '32FC1' and np.isfinite(d).all()
    invalid = d < disp.min_disparity
    assert np.all(d[invalid] == disp.min_disparity - 1) and invalid.any()
    np.testing.assert_allclose(depth[~invalid], FX * B / d[~invalid], rtol=1e-5)
    assert np.isnan(depth[invalid]).all()
    rows, cols = np.flatnonzero((~invalid).any(1)), np.flatnonzero((~invalid).any(0))
    win = disp.valid_window
    assert (win.y_offset, win.x_offset, win.height, win.width) == (
        rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)

    # organized cloud: layout, xyz = back-projected depth, rgb = the left image's colour
    pc2 = require('sensor_msgs_py.point_cloud2')
    assert (cloud.height, cloud.width, cloud.is_dense, cloud.point_step) == (H, W, False, 16)
    assert [f.name for f in cloud.fields] == ['x', 'y', 'z', 'rgb']
    pts = pc2.read_points(cloud, skip_nans=False).reshape(H, W)
    np.testing.assert_array_equal(pts['z'], depth)
    xyz = geometry.backproject(depth, np.reshape(info.k, (3, 3)))
    np.testing.assert_allclose(pts['x'], xyz[..., 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pts['y'], xyz[..., 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pts['rgb'].view(np.uint32), geometry.pack_rgb(scene['left']).view(np.uint32))


def test_runtime_parameter_changes_take_effect(rig, scene):
    full = as_array(rig.frame()['depth/image'])
    results = rig.set(decimation=2, depth_format='16UC1', points_rgb=False, max_depth=4)  # int for a float
    assert all(r.successful for r in results), results
    out = rig.frame()
    mm, info, cloud = as_array(out['depth/image']), out['depth/camera_info'], out['points']
    assert (out['depth/image'].encoding, mm.shape, info.width, info.height) == ('16UC1', (240, 320), 320, 240)
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)),
                               geometry.decimate_intrinsics(np.reshape(camera_info(W, H, FX).k, (3, 3)), 2))
    expected = geometry.decimate(full, 2)
    expected = np.where(expected <= 4.0, expected, np.nan)
    np.testing.assert_array_equal(mm == 0, np.isnan(expected))
    assert np.abs(mm[mm > 0] / 1000.0 - expected[mm > 0]).max() <= 0.0005 + 1e-6
    assert (cloud.height, cloud.width, cloud.point_step) == (240, 320, 12)
    assert out['disparity'].image.width == W  # disparity stays at the input resolution

    rejected = {
        'min_depth': 5.0,  # above max_depth 4
        'sgbm.disparity_range': 100,  # not a multiple of 16
        'sgbm.correlation_window_size': 4,  # even
        'sgbm.sgbm_mode': 'fast',
        'model': 'no_such_model',
        'depth_format': 'jpeg',
        'qos_depth': 5,  # read-only
        'input_reliability': 'reliable',  # read-only
    }
    for name, value in rejected.items():
        (result,) = rig.set(**{name: value})
        assert not result.successful and result.reason, name
    assert 'no_such_model' in rig.set(model='no_such_model')[0].reason
    assert rig.node.estimator.name == 'opencv_sgbm'

    assert all(r.successful for r in rig.set(**{'sgbm.disparity_range': 64}))
    assert rig.node.estimator.sgbm_params['disparity_range'] == 64
    assert rig.frame(['disparity'])['disparity'].max_disparity == 63.0
    assert all(r.successful for r in rig.set(model='opencv_bm', **{'sgbm.correlation_window_size': 15}))
    assert rig.node.estimator.name == 'opencv_bm'
    rig.frame(['depth/image'])
    assert rig.node.diagnostics.info['model'] == 'opencv_bm'


def test_lazy_subscribes_inputs_only_for_output_subscribers(ros, scene):
    node = StereoDepthNode()
    probe = Probe('lazy_probe')
    with spinning(node, probe):
        time.sleep(1.0)  # two checks of the subscriber counts
        assert not node.lazy.active and probe.count_subscribers('left/image_rect') == 0
        sub = probe.create_subscription(Image, 'depth/image', lambda m: None, 1)
        wait_until(lambda: probe.count_subscribers('right/camera_info') == 1)
        probe.destroy_subscription(sub)
        wait_until(lambda: probe.count_subscribers('right/camera_info') == 0)
        assert all(r.successful for r in node.set_parameters(overrides(lazy=False)))
        wait_until(lambda: probe.count_subscribers('left/image_rect') == 1)
        assert node.diagnostics.inputs.count == 0  # nothing was computed without subscribers


@pytest.mark.parametrize('rig', [{'queue_size': 3}], indirect=True)
def test_bad_inputs_are_reported_and_the_next_good_frame_is_served(rig):
    small = dict(small=True)
    info = lambda tx=0.0, w=320, h=240, fx=FX / 2: camera_info(w, h, fx, tx, LEFT)  # noqa: E731
    yuv = Image(height=240, width=320, encoding='yuv422', step=640, data=bytes(320 * 240 * 2))
    nan_info = info()
    nan_info.k[0] = nan_info.p[0] = float('nan')
    zero_info = info(fx=0.0)
    zero_info.k, zero_info.p = [0.0] * 9, [0.0] * 12
    cases = [
        ('encoding', 'yuv422', dict(left=yuv)),
        ('encoding', "'32FC1'", dict(left=np.zeros((240, 320), np.float32), left_encoding='32FC1')),
        ('size', '640x480', dict(right=rig.scene['right'])),
        ('info_size', 'camera_info is 640x480', dict(left_info=info(w=640, h=480))),
        ('intrinsics', 'no valid intrinsics', dict(left_info=zero_info)),
        ('intrinsics', 'fx=nan', dict(left_info=nan_info)),
        ('baseline', 'no baseline', dict(right_info=info(tx=0.0))),
        ('baseline', 'negative baseline', dict(right_info=info(tx=+0.1 * FX / 2))),
        ('sync', 'not synchronized', dict(right_offset_ns=10_000_000)),
    ]
    errors = rig.node.errors
    for cause, words, kwargs in cases:
        before = errors.problems[cause].count if cause in errors.problems else 0
        wait_until(lambda: rig.send(**small, **kwargs) and errors.problems.get(cause)
                   and errors.problems[cause].count > before, timeout=10, period=0.15)
        message = errors.problems[cause].message
        assert words in message, message
        if cause != 'sync':
            assert '/left/' in message or '/right/' in message, message  # names the topic
        rig.frame(['depth/image'], **small)
    # a publish failure is caught and counted; the node keeps publishing
    publish = rig.node.outputs.depth_pub.publish
    rig.node.outputs.depth_pub.publish = lambda msg: (_ for _ in ()).throw(RuntimeError('cannot publish data'))
    wait_until(lambda: rig.send(**small) and 'publish' in errors.problems, period=0.2)
    rig.node.outputs.depth_pub.publish = publish
    rig.frame(['depth/image'], **small)
    assert 'cannot publish data' in errors.problems['publish'].message
    # /diagnostics carries the problem while it is recent
    def latest_status():
        status = [s for m in rig.probe.received['/diagnostics'] for s in m.status
                  if s.name.startswith('stereo_depth_node')]
        values = {kv.key: kv.value for kv in status[-1].values} if status else {}
        return status and int(values['errors']) > len(cases) and (status[-1], values)
    status, values = wait_until(latest_status, timeout=5)
    assert status.level[0] >= 1 and status.message  # WARN or ERROR with the problem
    assert values['model'] == 'opencv_sgbm'
    assert float(values['output rate (Hz)']) > 0 and values['last error']


@pytest.mark.parametrize('rig', [{'approximate_sync': True, 'slop': 0.01}], indirect=True)
def test_approximate_sync_pairs_within_slop_and_reports_beyond(rig):
    out = rig.frame(['depth/image'], small=True, right_offset_ns=5_000_000)  # 5 ms < slop
    assert out['depth/image'].header.frame_id == LEFT
    wait_until(lambda: rig.send(small=True, right_offset_ns=50_000_000) and 'sync' in rig.node.errors.problems,
               period=0.1)
    assert 'within slop 0.01 s' in rig.node.errors.problems['sync'].message
    rig.frame(['depth/image'], small=True)


def test_overload_keeps_only_the_newest_frame(rig):
    rig.frame(['depth/image', 'points'])
    wait_until(lambda: rig.node.worker.idle())
    n0, in0, drop0 = rig.probe.count('depth/image'), rig.node.diagnostics.inputs.count, rig.node.worker.dropped
    headers = [rig.send() for _ in range(25)]  # far faster than SGBM at 640x480
    last = headers[-1].stamp
    wait_until(lambda: rig.probe.last('depth/image').header.stamp == last, timeout=20)
    wait_until(lambda: rig.node.worker.idle())
    outputs = rig.probe.received['depth/image'][n0:]
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in outputs]
    assert stamps == sorted(set(stamps)) and len(outputs) < 25  # newest first, nothing twice
    dropped = rig.node.worker.dropped - drop0
    assert dropped >= 1 and rig.node.diagnostics.inputs.count - in0 == len(outputs) + dropped  # all counted
    values = {kv.key: kv.value for kv in rig.node.diagnostics.status().values}
    assert int(values['dropped frames']) == rig.node.worker.dropped


def test_unloadable_model_falls_back_to_sgbm(ros, scene, tmp_path):
    card = tmp_path / 'broken.json'
    card.write_text(json.dumps({'name': 'broken', 'arch': 'anynet', 'kind': 'stereo', 'input': {},
                                'output': {'quantity': 'disparity'},
                                'graphs': [{'stages': 1, 'file': 'missing.s1.onnx'}]}))
    invalid_sgbm = {'sgbm.P1': 500.0, 'sgbm.P2': 100.0}  # P2 must exceed P1
    node = StereoDepthNode(parameter_overrides=overrides(model=str(card), **invalid_sgbm))
    with node_with_probe(node, {'depth/image': Image}, 'fallback_probe') as probe:
        assert node.estimator.name == 'opencv_sgbm' and node.estimator.sgbm_params['P1'] == 0
        status = node.diagnostics.status()
        assert status.level == b'\x02' and 'falling back to opencv_sgbm' in status.message
        assert 'missing.s1.onnx' in status.message and 'sgbm.* parameters are invalid too' in status.message
        StereoRig(node, probe, scene).frame(['depth/image'], small=True)


def _warning(rig) -> str:
    """The node's current /diagnostics message if it is a WARN, else ''."""
    status = rig.node.diagnostics.status()
    return status.message if status.level == b'\x01' else ''


@pytest.mark.parametrize('rig', [{'model': None}, {'model': None, 'fusion': 'sgbm'}], indirect=True)
def test_pairs_without_information_give_no_depth_and_a_warning(rig, scene):
    """A covered lens, a dead camera or unrelated views: AnyNet alone answers dense depth
    (57-79 px: a phantom wall); with the default parameters the node publishes confidence 0, no
    valid depth or points, and a WARN; so it does with fusion (SGBM finds consistent matches in
    unrelated views). A normal scene keeps its density."""
    small = scene['left'][::2, ::2]
    cases = {'black': np.zeros_like(small), 'white': np.full_like(small, 255), 'grey': np.full_like(small, 128)}
    for name, img in {**cases, 'unrelated': None}.items():
        left, right = (img, img) if img is not None else (small, np.ascontiguousarray(scene['right'][::-2, ::2]))
        out = rig.frame(['depth/image', 'confidence', 'points'], small=True, left=left, right=right)
        depth, conf = as_array(out['depth/image']), as_array(out['confidence'])
        assert np.isnan(depth).all() and conf.shape == depth.shape and conf.max() == 0.0, name
        assert out['confidence'].header == out['depth/image'].header and out['confidence'].encoding == '32FC1'
        assert 'without depth information' in _warning(rig), name
    assert 'texture' in rig.node.errors.problems['no_information'].message or name == 'unrelated'
    out = rig.frame(['depth/image', 'confidence'], small=True)
    depth, conf = as_array(out['depth/image']), as_array(out['confidence'])
    assert np.isfinite(depth).mean() > 0.9 and np.all((conf >= 0) & (conf <= 1)) and conf.mean() > 0.2


@pytest.mark.parametrize('rig', [{'model': None, 'fusion': 'none'}], indirect=True)
def test_fusion_set_over_dds_takes_sgbm_where_it_is_confident(rig, scene):
    """`ros2 param set <node> fusion sgbm` (the parameter service, over DDS; the default, here
    started with 'none') reloads AnyNet with SGBM beside it: depth stays dense and more of it is
    within 5 % of the truth (320x240, share of visible pixels off by more than 5 %: measured
    AnyNet alone 51 %, fused 32 %, 25 % with fusion_scale 1.0); sgbm.* parameters reach the
    fused matcher. Half-size frames: a fused 640x480 frame can outlast the harness's
    0.25 s resend period on a loaded machine. spn_limit (-1: the card's 0.5 px) is set at run time."""
    small = {k: scene[k][::2, ::2] for k in ('depth', 'occlusion')}
    depth = as_array(rig.frame(['depth/image'], small=True)['depth/image'])
    rel_net, visible = _relative_error(depth, small)
    client = AsyncParameterClient(rig.probe, rig.node.get_name())
    assert client.wait_for_services(timeout_sec=10.0)
    future = client.set_parameters([Parameter('fusion', value='sgbm')])
    wait_until(future.done)
    assert all(r.successful for r in future.result().results)
    est = rig.node.estimator
    assert (est.name, est.fusion, est.stages) == (DEFAULT_STEREO, 'sgbm', 4)
    out = rig.frame(['depth/image', 'confidence', 'disparity'], small=True)
    depth, conf = as_array(out['depth/image']), as_array(out['confidence'])
    rel, _ = _relative_error(depth, small)
    assert np.isfinite(depth).mean() > 0.95 and np.all((conf >= 0) & (conf <= 1))
    assert (rel[visible] > 0.05).mean() < 0.7 * (rel_net[visible] > 0.05).mean()
    assert (out['disparity'].min_disparity, out['disparity'].max_disparity) == (0.0, 192.0)
    assert all(r.successful for r in rig.set(**{'sgbm.disparity_range': 256}))
    assert rig.node.estimator.sgbm_params['disparity_range'] == 256
    assert rig.frame(['disparity'], small=True)['disparity'].max_disparity == 254.0  # matched at half size
    assert all(r.successful for r in rig.set(fusion_scale=1.0)) and rig.node.estimator._fusion.scale == 1.0  # noqa: SLF001
    assert rig.frame(['disparity'], small=True)['disparity'].max_disparity == 255.0
    assert not rig.set(fusion_scale=0.7)[0].successful
    assert all(r.successful for r in rig.set(fusion='none')) and rig.node.estimator.fusion == 'none'
    assert not rig.set(fusion='bm')[0].successful
    assert rig.node.estimator.spn_limit == 0.5  # -1: the card's trust region for the SPN
    assert all(r.successful for r in rig.set(spn_limit=0.0)) and rig.node.estimator.spn_limit == 0.0
    assert np.isfinite(as_array(rig.frame(['depth/image'], small=True)['depth/image'])).mean() > 0.95
    assert not rig.set(spn_limit=-2.0)[0].successful


@pytest.mark.parametrize('rig', [{'model': None, 'latency_budget_ms': 1.0},
                                 {'model': None, 'latency_budget_ms': 1.0, 'fusion': 'sgbm'}], indirect=True)
def test_latency_budget_decides_the_stage_and_diagnostics_report_it(rig):
    """A budget shorter than any stage leaves stage 1 as the answer; a generous one runs all 4;
    /diagnostics gives the share of frames each stage answered. With fusion the short budget
    leaves no frame fused (SGBM is not waited for) and the generous one fuses; /diagnostics
    gives the share of fused frames."""
    fusion = rig.node.estimator.fusion == 'sgbm'
    for _ in range(2):
        rig.frame(['depth/image'], small=True)
    info = rig.node.diagnostics.info
    assert info['stage answered (last frame)'] == '1'
    if fusion:
        assert (info['fused with SGBM (last frame)'], info['fused with SGBM (share of frames)']) == ('no', '0 %')
    else:
        assert 'fused with SGBM (last frame)' not in info
    assert all(r.successful for r in rig.set(latency_budget_ms=5000.0))
    rig.frame(['depth/image'], small=True)
    assert info['stage answered (last frame)'] == '4'
    share = info['stage answered (share of frames)']
    assert share.startswith('1: ') and '4: ' in share
    if fusion:
        assert info['fused with SGBM (last frame)'] == 'yes' and info['fused with SGBM (share of frames)'] != '0 %'


def test_sgbm_confidence_is_left_right_consistency_while_subscribed(rig, scene):
    """SGBM publishes a left-right confidence once confidence has a subscriber: below the
    threshold wherever the disparity is invalid, mostly high where it is valid; a black pair
    gives nothing and a WARN."""
    rig.probe.listen('confidence', Image)
    wait_until(lambda: rig.node.confidence_pub.get_subscription_count() > 0)
    out = rig.frame(['depth/image', 'confidence', 'disparity'], small=True)
    depth, conf = as_array(out['depth/image']), as_array(out['confidence'])
    valid = as_array(out['disparity'].image) >= out['disparity'].min_disparity
    assert conf.shape == depth.shape and np.all(conf[~valid] < 0.01) and np.median(conf[valid]) > 0.5  # threshold
    black = np.zeros_like(scene['left'][::2, ::2])
    out = rig.frame(['depth/image', 'confidence'], small=True, left=black, right=black)
    assert np.isnan(as_array(out['depth/image'])).all() and as_array(out['confidence']).max() == 0
    assert 'texture' in _warning(rig)


@pytest.mark.parametrize('rig', [{'max_input_pixels': 320 * 240, 'max_depth': 1.0}], indirect=True)
def test_negative_stamps_huge_images_and_out_of_range_depth_are_said_and_survived(rig):
    """Issue 12: a full exact-sync set with negative stamps hung the node for good; one huge
    pair took GBs; depth mostly beyond max_depth was NaN without a word."""
    errors = rig.node.errors
    rig.stamp = -10_000_000_000  # every input of the next sets has header.stamp.sec < 0
    wait_until(lambda: rig.send(small=True) and 'stamp' in errors.problems, period=0.1)
    assert 'negative' in errors.problems['stamp'].message
    rig.stamp = time.time_ns()
    wait_until(lambda: rig.send() and 'size' in errors.problems, period=0.2)  # 640x480 > the limit
    assert 'more than max_input_pixels (76800)' in errors.problems['size'].message
    depth = as_array(rig.frame(['depth/image'], small=True)['depth/image'])  # the scene is 1.6-8 m
    assert np.isnan(depth).mean() > 0.9
    message = wait_until(lambda: 'range' in errors.problems and errors.problems['range'].message)
    assert 'max_depth 1.0 m' in message and 'median depth' in message, message


ARENA_PROBE = """
import json
import numpy as np
from depth_ros.inference import StereoEstimator

def rss_mb():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS:')) / 1024.0

est = StereoEstimator('anynet_spn8')
rng = np.random.default_rng(0)
small = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
est(small, small)
before = rss_mb()
big = rng.integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
est(big, big)
del big
peak = rss_mb()
est(small, small)
print(json.dumps([before, peak, rss_mb()]))
"""


def test_onnxruntime_gives_back_the_memory_of_a_large_input():
    """Issue 12: after one 4097x4097 pair the node held 3.8 GB while serving 640x480 again (ONNX
    Runtime's CPU arena keeps its peak). Measured at 2048x2048 (step graphs): +~570 MB, then back
    to +~90 MB. In a fresh process: in this one the tests before it (DDS, other sessions) move
    the resident size by more than the margin."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, '-c', ARENA_PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, peak, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert peak - before > 200, (before, peak)  # the large input did take memory
    assert after - before < 0.25 * (peak - before), (before, peak, after)


def test_camera_info_without_images_is_diagnosed_within_5_s(rig):
    """Issue 12: a camera driver with default Fast DDS settings delivers no images to the
    best-effort input while its camera_info arrives; the node now says so, with both fixes."""
    rig.frame(['depth/image'], small=True)
    start = time.monotonic()

    def only_infos():
        hdr = header(time.time_ns(), LEFT)
        for topic, tx in (('left/camera_info', 0.0), ('right/camera_info', -FX / 2 * B)):
            info = camera_info(W // 2, H // 2, FX / 2, tx, LEFT)
            info.header = hdr
            rig.probe.publish(topic, info)
        return rig.node.errors.problems.get('input_qos')
    problem = wait_until(only_infos, timeout=8.0, period=0.1)
    assert time.monotonic() - start < 6.0  # 3 s of silence + a 1 s check (the issue: 5 s), + CI slack
    assert 'no image on /left/image_rect' in problem.message and 'input_reliability:=reliable' in problem.message
