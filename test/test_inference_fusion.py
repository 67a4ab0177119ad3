"""Fusion of AnyNet with SGBM (depth_ros.inference.fusion): the rule on hand-made maps (numpy
only), then through StereoEstimator on a rendered pair with thin structures (fused bad-3 below
both inputs), its confidence, and pairs without stereo information (still confidence 0)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from depth_ros.inference import EstimatorError, StereoEstimator
from depth_ros.inference.confidence import left_right
from depth_ros.inference.fusion import LR_MAX, SGBMFusion, fuse, fused_confidence, half_params, trusted
from depth_ros.inference.opencv_stereo import DEFAULTS
from depth_ros.metrics import stereo_metrics
from depth_ros.synthetic import StereoCamera, random_scene, render_stereo

W, H, FX, B = 320, 240, 250.0, 0.1
THRESHOLD = 0.01  # the node's default confidence_threshold


def _fronto(d_left: float, d_right: float, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(8, w) constant left and right disparity maps (px)."""
    return np.full((8, w), d_left, np.float32), np.full((8, w), d_right, np.float32)


def test_rule_takes_sgbm_where_it_is_consistent_and_in_range():
    """A left-right consistent SGBM answer (10 px) replaces the network's wrong one (14 px) and
    brings its confidence; the right map agreeing within LR_MAX (1.5 px) is enough."""
    sgbm, right = _fronto(10.0, 10.5)
    network = np.full_like(sgbm, 14.0)
    conf = left_right(sgbm, right)
    take = trusted(sgbm, conf, network, sgbm_max=127.0)
    assert take[:, 10:].all() and not take[:, :10].any()  # left of x = d the match is outside the right view
    fused = fuse(network, sgbm, take)
    np.testing.assert_array_equal(fused[:, 10:], 10.0)
    net_conf = np.full_like(sgbm, 0.3)
    out = fused_confidence(net_conf, conf, take)
    np.testing.assert_allclose(out[:, 10:], np.exp(-0.25), rtol=1e-6)
    np.testing.assert_array_equal(out[~take], np.float32(0.3))


@pytest.mark.parametrize('case', ['inconsistent', 'beyond_range', 'no_match', 'network_invalid', 'nearer', 'farther'])
def test_rule_keeps_the_network_where_sgbm_is_not_trusted(case):
    """The network's disparity stays where SGBM's right view disagrees by more than 1.5 px, where the
    network sees a disparity SGBM did not search (its wrong match looks consistent), where SGBM
    found nothing, where the network is invalid (no SGBM value is invented there), and where SGBM's
    consistent 10 px would overrule the network by more than a factor 1.5 (+- 2 px): 5 px (a far
    wall SGBM would turn into a phantom obstacle at half its distance) or 30 px."""
    sgbm, right = _fronto(10.0, 11.6 if case == 'inconsistent' else 10.0)
    network = np.full_like(sgbm, {'beyond_range': 150.0, 'nearer': 5.0, 'farther': 30.0}.get(case, 14.0))
    if case == 'no_match':
        sgbm[:] = np.nan
    if case == 'network_invalid':
        network[:] = np.nan
    take = trusted(sgbm, left_right(sgbm, right), network, sgbm_max=127.0)
    assert not take.any()
    np.testing.assert_array_equal(fuse(network, sgbm, take), network)


def test_right_view_is_matched_at_half_size_with_matching_parameters():
    """Half the disparities (a multiple of 16, rounded up), min_disparity halved, about half the
    window (odd, at least 3), explicit penalties scaled by the window's area (their ratio kept)."""
    half = half_params(DEFAULTS['opencv_sgbm'])
    assert (half['disparity_range'], half['min_disparity'], half['correlation_window_size']) == (64, 0, 3)
    assert (half['P1'], half['P2'], half['uniqueness_ratio']) == (0, 0, 10)
    half = half_params(dict(DEFAULTS['opencv_sgbm'], disparity_range=16, min_disparity=-5, correlation_window_size=11,
                            P1=484, P2=1936))
    assert (half['disparity_range'], half['min_disparity'], half['correlation_window_size']) == (16, -3, 5)
    assert (half['P1'], half['P2']) == pytest.approx((100, 400))


@pytest.fixture(scope='module')
def scene() -> dict:
    """Seed 3, rich content (rods, wires, fences): AnyNet alone is blobby there."""
    cam = StereoCamera(width=W, height=H, fx=FX, fy=FX, cx=(W - 1) / 2, cy=(H - 1) / 2, baseline=B)
    return render_stereo(random_scene(seed=3, content='rich'), cam)


@pytest.mark.parametrize('scale, gain', [(1.0, 0.85), (0.5, 0.9)])
def test_fused_disparity_beats_both_inputs_on_a_rendered_pair(scene, scale, gain):
    """bad-3 over every ground-truth pixel (holes count): measured network 12.1 %, SGBM 43.4 %
    (its blind 128 left columns), fused 9.5 % with the left view matched at full size (9.0 % with
    a full-size right view too), 10.5 % at half size (this pair is small: at 160x120 SGBM's 3 px
    window sees little; at 640x480 both scales score alike, README), with SGBM taken on about half
    the image. The confidence is SGBM's left-right consistency where taken and stays in [0, 1]."""
    bad3 = {}
    for name, kwargs in (('net', {}), ('fused', {'fusion': 'sgbm', 'fusion_scale': scale})):
        est = StereoEstimator('anynet_spn8', threads=1, **kwargs)
        bad3[name] = stereo_metrics(est(scene['left'], scene['right']), scene['disparity'])['bad3']
    sgbm = StereoEstimator('opencv_sgbm')
    bad3['sgbm'] = stereo_metrics(sgbm(scene['left'], scene['right']), scene['disparity'])['bad3']
    assert bad3['fused'] < gain * bad3['net'] and bad3['fused'] < bad3['sgbm'], bad3
    take = est._fusion.take  # noqa: SLF001 - which pixels the rule took
    conf = est.confidence()
    assert 0.3 < take.mean() < 0.8 and est.warning == ''
    assert np.all((conf >= 0) & (conf <= 1)) and np.all(conf[take] >= np.exp(-LR_MAX ** 2) - 1e-6)
    assert est.sgbm_params['disparity_range'] == 128 and est.max_disparity == 192.0


def test_pairs_without_information_keep_confidence_zero_with_fusion(scene):
    """Blank pairs and unrelated views: the fused map's confidence is 0 everywhere with the reason,
    so the node's threshold publishes no depth (SGBM finds consistent matches in unrelated views)."""
    est = StereoEstimator('anynet_spn8', fusion='sgbm')
    other = render_stereo(random_scene(seed=4, content='rich'),
                          StereoCamera(width=W, height=H, fx=FX, fy=FX, cx=(W - 1) / 2, cy=(H - 1) / 2, baseline=B))
    cases = {name: (np.full((H, W, 3), v, np.uint8),) * 2 for name, v in (('black', 0), ('white', 255), ('grey', 128))}
    cases['unrelated'] = (scene['left'], other['right'])
    for name, (left, right) in cases.items():
        est(left, right)
        conf = est.confidence()
        assert conf.shape == (H, W) and conf.max() < THRESHOLD and est.warning, name


def test_fusion_arguments_are_checked():
    with pytest.raises(EstimatorError, match='fusion must be one of'):
        StereoEstimator('anynet_spn8', fusion='bm')
    with pytest.raises(EstimatorError, match='fusion_scale must be one of'):
        StereoEstimator('anynet_spn8', fusion='sgbm', fusion_scale=0.25)
    with pytest.raises(EstimatorError, match='no network'):
        StereoEstimator('opencv_sgbm', fusion='sgbm')
    with pytest.raises(EstimatorError, match='sgbm parameters apply'):
        StereoEstimator('anynet_spn8', sgbm={'disparity_range': 64})
    est = StereoEstimator('anynet_spn8', fusion='sgbm', sgbm={'disparity_range': 256})
    assert est.max_disparity == 254.0  # matched at half size: 128 disparities, the last 127 px = 254 px here
    full = StereoEstimator('anynet_spn8', fusion='sgbm', fusion_scale=1.0, sgbm={'disparity_range': 256})
    assert full.max_disparity == 255.0
    est.set_sgbm(disparity_range=64)
    assert est.sgbm_params['disparity_range'] == 64
    with pytest.raises(EstimatorError, match='alone'):
        StereoEstimator('anynet_spn8').set_sgbm(disparity_range=64)
    est.set_sgbm(disparity_range=128)  # wider than the pair below: SGBM cannot match it, the network answers alone
    pair = np.random.default_rng(0).integers(0, 255, (2, 64, 96, 3), dtype=np.uint8)
    disparity = est(pair[0], pair[1])
    assert disparity.shape == (64, 96) and not est._fusion.take.any()  # noqa: SLF001


@pytest.mark.parametrize('threads', [1, 2])
def test_a_deadline_the_matchings_cannot_meet_publishes_the_network_alone(scene, threads):
    """threads 1 (matchings after the network) and 2 (in a worker beside it): a deadline that
    leaves no time for the matchings answers the network's stage 1 unfused (no SGBM pixel; values
    as the network alone) and shrinks the matchings' predicted duration by DECAY so fusion is
    tried again; a generous deadline fuses again (SGBM on about half of the image)."""
    left, right = scene['left'], scene['right']
    est = StereoEstimator('anynet_spn8', threads=threads, fusion='sgbm')
    est(left, right)  # measures the network's stages and the matchings
    seconds = est._fusion.seconds  # noqa: SLF001
    assert est.fused and seconds > 0
    tight = est(left, right, deadline=time.monotonic() + 1e-4)
    assert not est.fused and est.last_stage == 1 and not est._fusion.take.any()  # noqa: SLF001
    assert est._fusion.seconds == pytest.approx(SGBMFusion.DECAY * seconds)  # noqa: SLF001
    alone = StereoEstimator('anynet_spn8', threads=threads, stages=1)(left, right)
    valid = np.isfinite(tight)
    assert valid.mean() > 0.95
    np.testing.assert_allclose(tight[valid], alone[valid], atol=1e-3)
    est(left, right, deadline=time.monotonic() + 30.0)
    assert est.fused and est.last_stage == 4 and 0.3 < est._fusion.take.mean() < 0.8  # noqa: SLF001


def test_matchings_late_for_the_deadline_are_not_waited_for(scene):
    """In a worker: matchings predicted to fit (their duration forgotten) that have not ended at
    the deadline are dropped without waiting (the call returns while they still run), the next
    pair is not matched while they run (no backlog), and fusion resumes once they have ended.
    The pair at 640x480 with full-DP SGBM: measured 0.5 s of matchings, 30-50 ms per call. Under
    a deadline matchings start only if they would end before it after the network's stage 1."""
    left, right = (np.repeat(np.repeat(scene[k], 2, 0), 2, 1) for k in ('left', 'right'))
    est = StereoEstimator('anynet_spn8', threads=2, fusion='sgbm', sgbm={'disparity_range': 256, 'sgbm_mode': 'hh'})
    est(left, right)
    fusion = est._fusion  # noqa: SLF001
    fusion.seconds = 0.0
    first = fusion._running  # noqa: SLF001 - the first call's (done) matchings
    est(left, right, deadline=time.monotonic() + 0.5 * est.stage_seconds[1])  # not started: no time after stage 1
    assert not est.fused and fusion._running is first  # noqa: SLF001
    fusion.seconds = 0.0
    est(left, right, deadline=time.monotonic() + est.stage_seconds[1] + 1e-3)  # started: fits after stage 1
    late = fusion._running  # noqa: SLF001
    assert not est.fused and late is not None and not late.done()
    est(left, right)
    assert not est.fused and fusion._running is late  # noqa: SLF001
    late.result()
    est(left, right)
    assert est.fused and fusion.take.any()


def test_matchings_that_miss_their_deadline_pause_fusion_under_a_budget(scene):
    """Late matchings take the cores from the next frames' network: after 1, 2 misses in a row
    fusion sits out 1, 2 frames that have a deadline (not frames without one), then fuses again
    and a hit resets the count. Slow matchings as above (640x480 doubled, full-DP SGBM)."""
    left, right = (np.repeat(np.repeat(scene[k], 2, 0), 2, 1) for k in ('left', 'right'))
    est = StereoEstimator('anynet_spn8', threads=2, fusion='sgbm', sgbm={'disparity_range': 256, 'sgbm_mode': 'hh'})
    est(left, right)
    fusion = est._fusion  # noqa: SLF001
    for misses in (1, 2):
        fusion.seconds = 0.0
        est(left, right, deadline=time.monotonic() + est.stage_seconds[1] + 1e-3)  # starts, then misses
        assert not est.fused and fusion._pause == misses  # noqa: SLF001
        fusion._running.result()  # noqa: SLF001
        for _ in range(misses):
            est(left, right, deadline=time.monotonic() + 60.0)  # ample time, but paused
            assert not est.fused
    est(left, right, deadline=time.monotonic() + 60.0)
    assert est.fused and (fusion._misses, fusion._pause) == (0, 0)  # noqa: SLF001
