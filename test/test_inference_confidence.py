"""Confidence maps (depth_ros.inference.confidence) through the estimators: uninformative pairs
(blank, grey, unrelated views) score 0 with a reason, rendered scenes keep their density, and
confidence ranks good pixels above bad ones."""
from __future__ import annotations

import numpy as np
import pytest

from depth_ros.inference import StereoEstimator
from depth_ros.inference.confidence import informative, left_right, stage_agreement
from depth_ros.synthetic import StereoCamera, random_scene, render_stereo

W, H, FX, B = 320, 240, 250.0, 0.1
THRESHOLD = 0.01  # the nodes' default confidence_threshold


@pytest.fixture(scope='module')
def scene() -> dict:
    cam = StereoCamera(width=W, height=H, fx=FX, fy=FX, cx=(W - 1) / 2, cy=(H - 1) / 2, baseline=B)
    return render_stereo(random_scene(seed=21), cam)


@pytest.fixture(scope='module')
def other() -> dict:
    cam = StereoCamera(width=W, height=H, fx=FX, fy=FX, cx=(W - 1) / 2, cy=(H - 1) / 2, baseline=B)
    return render_stereo(random_scene(seed=22), cam)


def _cases(scene: dict, other: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    blank = {name: np.full((H, W, 3), value, np.uint8) for name, value in (('black', 0), ('white', 255),
                                                                             ('grey', 128))}
    cases = {name: (img, img.copy()) for name, img in blank.items()}
    cases['unrelated'] = (scene['left'], other['right'])
    return cases


@pytest.mark.parametrize('model', ['anynet_spn8', 'anynet', 'opencv_sgbm'])
def test_uninformative_pairs_score_zero_and_say_why(model, scene, other):
    est = StereoEstimator(model)
    for name, (left, right) in _cases(scene, other).items():
        est(left, right)
        conf = est.confidence()
        assert conf.shape == (H, W) and conf.dtype == np.float32
        assert conf.max() == 0.0, name
        assert ('texture' in est.warning) if name != 'unrelated' else ('do not match' in est.warning or
                                                                       'no disparity' in est.warning), name


@pytest.mark.parametrize('model', ['anynet_spn8', 'opencv_sgbm'])
def test_rendered_scene_keeps_density_and_confidence_ranks_errors(model, scene):
    est = StereoEstimator(model)
    disparity = est(scene['left'], scene['right'])
    conf = est.confidence()
    assert est.warning == '' and 0.0 <= conf.min() and conf.max() <= 1.0
    valid = np.isfinite(disparity)
    assert np.mean(conf[valid] >= THRESHOLD) > 0.9  # the default threshold keeps normal density
    assert np.all(conf[~valid] == 0)
    gt = ~scene['occlusion'] & valid
    err = np.abs(disparity - scene['disparity'])[gt]
    good, bad = conf[gt][err <= 3], conf[gt][err > 3]
    assert bad.size and good.mean() > bad.mean() + 0.1, (good.mean(), bad.mean())


def test_left_right_and_stage_agreement_on_known_maps():
    d = np.full((4, 20), 3.0, np.float32)
    assert np.allclose(left_right(d, d)[:, 4:], 1.0) and np.all(left_right(d, d)[:, :3] == 0)  # warp leaves the image
    assert np.allclose(left_right(d, d + 1.0)[:, 4:], np.exp(-1.0))
    assert np.allclose(stage_agreement(d, d + 2.0), np.exp(-1.0)) and stage_agreement(d, d * np.nan).max() == 0


def test_confidence_of_a_one_row_pair_does_not_raise():
    """The information test halves the pair: a 1 px side made cv2.resize raise inside the node's frame."""
    est = StereoEstimator('opencv_sgbm')
    row = np.random.default_rng(0).integers(0, 256, (1, 200, 3), dtype=np.uint8)
    est(row, row)
    conf = est.confidence(left_right=False)
    assert conf.shape == (1, 200) and conf.max() == 0.0 and est.warning


def test_information_test_judges_only_pixels_with_a_disparity(scene):
    """A matcher leaves holes (SGBM: a left band as wide as its search, occlusions): the pair is still
    informative. After the warp moved to geometry, holes counted as mismatches and the demo's
    SGBM at 160x120 (a 128 px band without disparity) was rejected as 'the views do not match'."""
    disparity = scene['disparity'].astype(np.float32).copy()
    disparity[:, : int(0.8 * W)] = np.nan  # 80 % without disparity (SGBM: 128 px band at 160 px width)
    left, right = (np.asarray(img.mean(-1), np.uint8) for img in (scene['left'], scene['right']))
    ok, why = informative(left, right, disparity)
    assert ok, why
