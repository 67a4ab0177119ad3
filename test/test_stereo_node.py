"""stereo_depth_node over DDS (in-process, SingleThreadedExecutor as run_node spins): ROS conventions of every output,
accuracy of SGBM depth and of the default (shipped, trained AnyNet) against the synthetic scene's
exact depth, run-time parameters, lazy subscription, pairs without information, fusion, the latency
budget, confidence, diagnostics. Bad input: test_stereo_node_inputs.py. Most tests pin
model:=opencv_sgbm (fast, exactly known output)."""
from __future__ import annotations

import time

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import Image

from depth_ros import geometry
from depth_ros.model_card import DEFAULT_STEREO
from depth_ros.nodes.stereo import StereoDepthNode
from ros_harness import (Probe, as_array, camera_info, overrides, require,
                         spinning, wait_until)
from ros_harness import ros_fixture  # noqa: F401 (the ros fixture)
from stereo_rig import B, FX, H, LEFT, OUTPUTS, RIGHT, W, rig_fixture, scene_fixture  # noqa: F401 (fixtures)


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
