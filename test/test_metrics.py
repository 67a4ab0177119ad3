"""Known-case tests for depth_ros.metrics (numpy)."""
import math

import numpy as np
import pytest

from depth_ros import metrics as M

NAN = np.nan


def _hand_case():
    """3 counted pixels (gt 1, 2, 4 -> pred 2, 2, 5.5); NaN GT, zero GT and a pixel masked
    out by ``valid`` (huge error) must not count."""
    gt = np.array([[1.0, 2.0, NAN], [4.0, 0.0, 3.0]])
    pred = np.array([[2.0, 2.0, 7.0], [5.5, 9.0, 300.0]])
    valid = np.array([[True, True, True], [True, True, False]])
    return pred, gt, valid


def test_depth_metrics_hand_computed_with_masks_anded():
    pred, gt, valid = _hand_case()
    m = M.depth_metrics(pred, gt, valid)
    assert m['rmse'] == pytest.approx(math.sqrt((1 + 0 + 1.5 ** 2) / 3))
    assert m['mae'] == pytest.approx(2.5 / 3)
    assert m['absrel'] == pytest.approx((1 + 0 + 1.5 / 4) / 3)
    assert m['sqrel'] == pytest.approx((1 + 0 + 2.25 / 4) / 3)
    assert m['rmse_log'] == pytest.approx(math.sqrt((math.log(2) ** 2 + math.log(1.375) ** 2) / 3))
    assert m['log10'] == pytest.approx((math.log10(2) + math.log10(1.375)) / 3)
    assert (m['delta1'], m['delta2'], m['delta3']) == pytest.approx((1 / 3, 2 / 3, 2 / 3))


def test_depth_metrics_never_count_pixels_without_gt_or_outside_valid():
    pred, gt, valid = _hand_case()
    base = M.depth_metrics(pred, gt, valid)
    # OR-ing the masks would count the masked-out pixel; ignoring GT validity would count
    # the zero-GT pixel; either changes the result.
    other = pred.copy()
    other[1, 1], other[0, 2], other[1, 2] = 1e3, 1e3, 1e3
    assert M.depth_metrics(other, gt, valid) == base
    assert M.depth_metrics(pred, gt)['mae'] > 50  # without valid the 300 m error counts


def test_perfect_prediction_and_constant_offset():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 8.0, (3, 16, 20))
    m = M.depth_metrics(gt, gt)
    for k in ('rmse', 'mae', 'absrel', 'sqrel', 'rmse_log', 'log10'):
        np.testing.assert_allclose(m[k], 0.0, atol=1e-12)
    for k in ('delta1', 'delta2', 'delta3'):
        np.testing.assert_array_equal(m[k], 1.0)
    off = M.depth_metrics(gt + 0.25, gt)
    np.testing.assert_allclose(off['mae'], 0.25)
    np.testing.assert_allclose(off['rmse'], 0.25)
    np.testing.assert_allclose(off['absrel'], (0.25 / gt).mean(axis=(1, 2)))
    assert M.ssim(gt[0], gt[0]) == pytest.approx(1.0)


def test_batched_equals_per_image_and_empty_image_is_nan():
    rng = np.random.default_rng(1)
    gt = rng.uniform(1, 5, (3, 8, 9))
    gt[2] = 0.0  # no GT at all
    pred = gt * rng.uniform(0.8, 1.2, gt.shape) + 0.1
    batch = M.depth_metrics(pred, gt)
    for i in range(2):
        single = M.depth_metrics(pred[i], gt[i])
        for k, v in single.items():
            assert batch[k][i] == pytest.approx(v)
    assert all(np.isnan(v[2]) for v in batch.values())


def test_depth_cap():
    gt = np.array([[2.0, 12.0], [5.0, 9.0]])
    pred = np.array([[2.0, 3.0], [5.0, 14.0]])  # 12 m GT ignored, 14 m prediction clipped to 10
    m = M.depth_metrics(pred, gt, max_depth=10.0)
    assert m['mae'] == pytest.approx(1.0 / 3)


@pytest.mark.parametrize('mode', ['median', 'lsq', 'lsq_shift'])
def test_aligned_metrics_are_scale_invariant(mode):
    rng = np.random.default_rng(2)
    gt = rng.uniform(1, 6, (2, 12, 14))
    gt[:, :3] = NAN
    rel = gt * rng.uniform(0.9, 1.1, gt.shape)  # a relative prediction (unknown scale)
    base = M.depth_metrics(rel, gt, align_mode=mode)
    scaled = M.depth_metrics(rel * 7.3 + (2.0 if mode == 'lsq_shift' else 0.0), gt, align_mode=mode)
    for k in base:
        np.testing.assert_allclose(scaled[k], base[k], rtol=1e-9)
    assert M.depth_metrics(rel * 7.3, gt)['absrel'].min() > 5  # unaligned it is wrong
    exact = M.depth_metrics(gt / 3.0 + (0.5 if mode == 'lsq_shift' else 0.0), gt, align_mode=mode)
    np.testing.assert_allclose(exact['rmse'], 0.0, atol=1e-9)


def test_alignment_matches_closed_forms():
    gt = np.array([[1.0, 2.0], [3.0, NAN]])
    pred = np.array([[1.0, 1.0], [2.0, 50.0]])
    # median: scale median(1, 2, 3) / median(1, 1, 2) = 2 -> (2, 2, 4); lsq: (1 + 2 + 6) / (1 + 1 + 4) = 1.5
    assert M.depth_metrics(pred, gt, align_mode='median')['mae'] == pytest.approx((1 + 0 + 1) / 3)
    assert M.depth_metrics(pred, gt, align_mode='lsq')['mae'] == pytest.approx((0.5 + 0.5 + 0) / 3)


def test_ssim_constant_images_hand_value_and_mask():
    a, b, rng_ = 2.0, 3.0, 4.0
    c1 = (0.01 * rng_) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # contrast/structure term is C2/C2 = 1
    pred, gt = np.full((20, 20), a), np.full((20, 20), b)
    assert M.ssim(pred, gt, data_range=rng_) == pytest.approx(expected)
    for window in ('gaussian', 'box'):
        assert M.ssim(pred, gt, data_range=rng_, window=window, size=7) == pytest.approx(expected)
    rng = np.random.default_rng(3)
    gt = rng.uniform(1, 3, (24, 24))
    gt[5:12, 5:12] = 0.0
    pred = gt + rng.normal(0, 0.2, gt.shape)
    base = M.ssim(pred, gt)
    pred[5:12, 5:12] = 100.0  # prediction where GT is missing must not matter
    assert M.ssim(pred, gt) == pytest.approx(base)
    assert 0 < base < 1


def test_whdr_hand_computed_conventions():
    depth = np.array([[1.0, 2.0], [3.0, 4.0]])
    px = np.array([
        [0, 0, 0, 1, +1],  # depth 1 vs 2: i closer, correct
        [1, 1, 0, 0, +1],  # 4 vs 1: i is farther, wrong
        [1, 0, 0, 1, -1],  # 3 vs 2: i farther, correct
        [1, 0, 1, 1, 0],   # 3 vs 4: equal only within ratio 1.4
    ], dtype=float)
    pairs = M.normalize_pairs(px, (2, 2))
    assert M.whdr(depth, pairs, threshold=0.4) == pytest.approx(1 / 4)
    assert M.whdr(depth, pairs) == pytest.approx(2 / 4)  # no threshold: the r = 0 pair is wrong
    assert M.whdr(1.0 / depth, pairs, threshold=0.4, higher_is_closer=True) == pytest.approx(1 / 4)
    assert M.whdr(depth, pairs, threshold=0.4, higher_is_closer=True) == pytest.approx(2 / 4)
    assert M.whdr(depth, pairs, np.array([True, False, True, True]), threshold=0.4) == 0.0
    batch = M.whdr(np.stack([depth, 5 - depth]), np.stack([pairs, pairs]), threshold=0.4)
    np.testing.assert_allclose(batch, [1 / 4, 3 / 4])


def test_stereo_metrics_offsets_d1_and_density():
    gt = np.full((4, 5), 50.0)
    gt[0, 0] = 0.0  # no GT
    m = M.stereo_metrics(gt + 2.5, gt)
    assert (m['epe'], m['bad1'], m['bad2'], m['bad3'], m['d1']) == pytest.approx((2.5, 1, 1, 0, 0))
    assert m['density'] == 1.0
    # D1 needs > 3 px AND > 5 %: 4 px at 100 is 4 %, 4 px at 50 is 8 %
    assert M.stereo_metrics(np.full((3, 3), 104.0), np.full((3, 3), 100.0))['d1'] == 0.0
    assert M.stereo_metrics(np.full((3, 3), 54.0), np.full((3, 3), 50.0))['d1'] == 1.0
    # half the GT pixels without a prediction: they count as bad in 'all', not in '_pred'
    gt = np.full((2, 4), 10.0)
    pred = np.array([[10.5, 15.0, NAN, NAN], [10.0, 10.0, 0.0, -1.0]])
    m = M.stereo_metrics(pred, gt, thresholds=(3.0,))
    assert m['density'] == pytest.approx(0.5)
    assert m['bad3'] == pytest.approx((1 + 4) / 8)
    assert m['bad3_pred'] == pytest.approx(1 / 4)
    assert m['epe'] == pytest.approx((0.5 + 5 + 0 + 0) / 4)
    m = M.stereo_metrics(pred, gt, pred_valid=np.array([[True] * 4, [False] * 4]), thresholds=(3.0,))
    assert m['density'] == pytest.approx(2 / 8) and m['bad3_pred'] == pytest.approx(1 / 2)


def test_accumulator_means_over_images_and_skips_nan():
    acc = M.MetricAccumulator()
    acc.update({'rmse': 1.0, 'd1': 0.5})
    acc.update({'rmse': np.array([2.0, 3.0]), 'd1': np.array([NAN, 0.1])})
    assert acc.mean() == pytest.approx({'rmse': 2.0, 'd1': 0.3})
    assert acc.counts == {'rmse': 3, 'd1': 2}
