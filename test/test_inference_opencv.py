"""OpenCV SGBM/BM behind StereoEstimator, scored on synthetic stereo pairs with exact ground truth.

Measured on seeds 0-3 at 320x240 (64 disparities, OpenCV 5.0), bad-3 = fraction of
non-occluded ground-truth pixels (in the searched columns) whose error exceeds 3 px, a pixel
without a prediction counting as bad:

    SGBM colour 0.014 0.089 0.063 0.013 (mean 0.045, EPE 0.43 px)   SGBM grey: mean 0.058
    SGBM at input_scale 0.5: mean 0.050 (EPE 0.52 px)
    BM 0.234 0.221 0.182 0.192 (mean 0.207; over its own predictions only: mean 0.037)

The bounds below sit about 1.7x above those means: they leave room for other OpenCV builds but
fail on any systematic mistake (a missing /16 or 1/s rescale, a half-pixel shift of the
resized disparity, swapped images).
"""
import numpy as np
import pytest

from depth_ros.inference import StereoEstimator
from depth_ros.inference.images import to_grey
from depth_ros.synthetic import StereoCamera, random_scene, render_stereo
from depth_ros.metrics import stereo_metrics

SEEDS = (0, 1, 2, 3)
RANGE = 64
CAMERA = StereoCamera(width=320, height=240, fx=250.0, fy=250.0, cx=159.5, cy=119.5, baseline=0.12)


@pytest.fixture(scope='module')
def frames():
    return [render_stereo(random_scene(seed), CAMERA) for seed in SEEDS]


def score(estimator: StereoEstimator, frames, grey: bool = False, first_column: int = RANGE) -> dict[str, np.ndarray]:
    """bad3 (dense), bad3_pred and epe per frame, over non-occluded pixels from ``first_column``
    on (the matchers cannot search the columns left of their disparity range)."""
    rows = []
    for f in frames:
        left, right = (to_grey(f['left']), to_grey(f['right'])) if grey else (f['left'], f['right'])
        pred = estimator(left, right)
        assert pred.shape == f['disparity'].shape and pred.dtype == np.float32
        valid = ~f['occlusion'] & (np.arange(CAMERA.width)[None, :] >= first_column)
        rows.append(stereo_metrics(pred, f['disparity'], valid, max_disparity=RANGE - 1))
    return {k: np.array([r[k] for r in rows]) for k in ('bad3', 'bad3_pred', 'epe', 'density')}


def test_sgbm_is_accurate_and_beats_bm(frames):
    sgbm = score(StereoEstimator('opencv_sgbm', sgbm={'disparity_range': RANGE}), frames)
    bm = score(StereoEstimator('opencv_bm', sgbm={'disparity_range': RANGE}), frames)
    assert sgbm['bad3'].mean() < 0.08 and sgbm['bad3'].max() < 0.15
    assert sgbm['epe'].mean() < 0.8
    assert sgbm['density'].min() > 0.95
    assert bm['bad3_pred'].mean() < 0.10  # BM's answers are mostly right, but it leaves holes
    assert bm['bad3'].mean() < 0.35
    assert (sgbm['bad3'] < bm['bad3']).all()
    assert sgbm['bad3'].mean() < 0.5 * bm['bad3'].mean()


def test_sgbm_on_grey_images(frames):
    grey = score(StereoEstimator('opencv_sgbm', sgbm={'disparity_range': RANGE}), frames, grey=True)
    assert grey['bad3'].mean() < 0.10


def test_half_resolution_matching_is_rescaled_to_input_pixels(frames):
    # 32 disparities at half resolution cover the same 64 px of the input images
    est = StereoEstimator('opencv_sgbm', sgbm={'disparity_range': RANGE // 2}, input_scale=0.5)
    half = score(est, frames)
    assert est.max_disparity == pytest.approx(2 * (RANGE // 2 - 1))
    assert est.delta_d == pytest.approx(2 / 16)
    assert half['bad3'].mean() < 0.10
    assert half['epe'].mean() < 1.0


def test_run_time_parameter_change_takes_effect(frames):
    est = StereoEstimator('opencv_sgbm', sgbm={'disparity_range': RANGE})
    f = frames[0]
    est.set_sgbm(min_disparity=4, disparity_range=16)
    out = est(f['left'], f['right'])
    assert (est.min_disparity, est.max_disparity) == (4.0, 19.0)
    assert np.nanmin(out) >= 4.0 and np.nanmax(out) <= 19.0
    inside = ~f['occlusion'] & (f['disparity'] > 6) & (f['disparity'] < 17) & (np.arange(CAMERA.width) >= 20)
    assert inside.mean() > 0.1
    assert stereo_metrics(out, f['disparity'], inside)['bad3'] < 0.1
