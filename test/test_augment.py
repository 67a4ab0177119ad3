"""Augmentations: geometric consistency of flips / crops / channel permutations, photometric maths,
numpy per-sample and torch batched paths giving the same result."""
import numpy as np
import pytest
import torch

from depth_ros.synthetic import StereoCamera, random_scene, render_stereo, warp_right_to_left
from depth_ros.training.data.augment import (Augment, Photometric, apply_photometric, crop, hflip,
                                             permute_channels)
from depth_ros.training.data.synth import SyntheticStereo

CAM = StereoCamera(160, 120, 120.0, 120.0, 79.5, 59.5, 0.2)
KEYS = ('left', 'right', 'disparity', 'disparity_right', 'occlusion', 'occlusion_right', 'depth', 'depth_right')


@pytest.fixture(scope='module')
def pair():
    frame = render_stereo(random_scene(0), CAM)
    return {k: frame[k] for k in KEYS}


def warp_error(sample: dict) -> float:
    """Mean |left - right resampled at u - d| over visible pixels away from disparity edges."""
    left = np.asarray(sample['left'], np.float32)
    rec, inside = warp_right_to_left(np.asarray(sample['right'], np.float32), sample['disparity'])
    d = np.nan_to_num(sample['disparity'], nan=-1e3)
    smooth = np.ones(d.shape, bool)
    for axis in (0, 1):
        jump = np.abs(np.diff(d, axis=axis)) > 0.5
        lo, hi = [slice(None)] * 2, [slice(None)] * 2
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        smooth[tuple(lo)] &= ~jump
        smooth[tuple(hi)] &= ~jump
    keep = inside & ~sample['occlusion'] & smooth
    assert keep.mean() > 0.5
    return float(np.abs(rec - left).mean(-1)[keep].mean())


def test_stereo_flip_mirrors_and_swaps_views(pair):
    base = warp_error(pair)
    assert base < 2.0                          # grey levels (0-255)
    flipped = hflip(pair)
    np.testing.assert_array_equal(flipped['left'], pair['right'][:, ::-1])
    np.testing.assert_array_equal(flipped['disparity'], pair['disparity_right'][:, ::-1])
    np.testing.assert_array_equal(flipped['occlusion_right'], pair['occlusion'][:, ::-1])
    assert warp_error(flipped) < 2.0
    mirrored_only = {**pair, **{k: pair[k][:, ::-1] for k in KEYS}}   # mirroring without the swap is wrong
    assert warp_error(mirrored_only) > 5 * base
    assert hflip(pair, False) is pair


def test_stereo_flip_needs_the_right_disparity(pair):
    kitti_like = {k: pair[k] for k in ('left', 'right', 'disparity')}
    assert hflip(kitti_like) is kitti_like
    no_masks = {k: pair[k] for k in ('left', 'right', 'disparity', 'disparity_right', 'occlusion')}
    flipped = hflip(no_masks)
    assert 'occlusion' not in flipped and np.array_equal(flipped['right'], pair['left'][:, ::-1])


def test_mono_flip_moves_image_and_depth_together():
    image = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    depth = np.arange(20, dtype=np.float32).reshape(4, 5)
    out = hflip({'image': image, 'depth': depth, 'fx': 100.0})
    assert out['image'][1, 0].tolist() == image[1, 4].tolist() and out['depth'][1, 0] == depth[1, 4]
    assert out['fx'] == 100.0


def test_crop_keeps_stereo_geometry(pair):
    out = crop(pair, 10, 30, 90, 120)
    assert all(out[k].shape[:2] == (90, 120) for k in KEYS)
    np.testing.assert_array_equal(out['disparity'], pair['disparity'][10:100, 30:150])
    assert warp_error(out) < 2.0


def test_channel_permutation_is_shared_by_both_views(pair):
    out = permute_channels(pair, [2, 0, 1])
    np.testing.assert_array_equal(out['left'], pair['left'][..., [2, 0, 1]])
    np.testing.assert_array_equal(out['right'], pair['right'][..., [2, 0, 1]])
    assert out['disparity'] is pair['disparity']


def _to_numpy_sample(batch: dict, i: int) -> dict:
    return {k: (v[i].permute(1, 2, 0).numpy() if v.shape[1] == 3 else v[i, 0].numpy()) for k, v in batch.items()
            if k in KEYS or k in ('valid', 'valid_right')}


def test_batched_torch_matches_numpy_per_sample():
    batch = SyntheticStereo(24, 40, 'cpu', seed=2, photometric=None).next_batch(3)
    batch = {k: v for k, v in batch.items() if k not in ('fx', 'baseline')}
    flags = torch.tensor([True, False, True])
    perms = np.array([[2, 1, 0], [0, 1, 2], [1, 2, 0]])
    out = permute_channels(hflip(batch, flags), perms)
    for i in range(3):
        expected = permute_channels(hflip(_to_numpy_sample(batch, i), bool(flags[i])), perms[i])
        got = _to_numpy_sample(out, i)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])


def test_photometric_formula():
    image = np.full((2, 2, 3), 0.5, np.float32)
    image[0] = 0.3
    one = np.ones(1)
    params = {'gamma': 2 * one, 'color': np.array([[1.0, 1.0, 0.5]]), 'brightness': 1.2 * one,
              'contrast': 1.5 * one, 'noise': 0 * one}
    out = apply_photometric(image, params, np.random.default_rng(0))
    x = image ** 2 * 1.2 * np.array([1.0, 1.0, 0.5])
    np.testing.assert_allclose(out, np.clip(x.mean() + 1.5 * (x - x.mean()), 0, 1), rtol=1e-6)
    batched = apply_photometric(torch.from_numpy(image).permute(2, 0, 1)[None], params, np.random.default_rng(0))
    np.testing.assert_allclose(batched[0].permute(1, 2, 0).numpy(), out, rtol=1e-6)
    uint8 = apply_photometric((image * 255).round().astype(np.uint8), params, np.random.default_rng(0))
    np.testing.assert_allclose(uint8, out, atol=0.01)


def test_photometric_jitter_is_seeded_bounded_and_nearly_equal_for_both_views(pair):
    jitter = Photometric(noise=(0.0, 0.0))
    a = jitter(pair, np.random.default_rng(5))
    b = jitter(pair, np.random.default_rng(5))
    np.testing.assert_array_equal(a['left'], b['left'])
    assert a['left'].dtype == np.float32 and 0 <= a['left'].min() and a['left'].max() <= 1
    same = {'left': pair['left'], 'right': pair['left']}
    out = jitter(same, np.random.default_rng(6))
    ratio = out['right'].mean() / out['left'].mean()
    assert ratio != 1.0 and abs(ratio - 1) < 0.2
    exact = Photometric(noise=(0.0, 0.0), stereo=0.0)(same, np.random.default_rng(6))
    np.testing.assert_array_equal(exact['left'], exact['right'])
    noisy = Photometric(brightness=(1, 1), contrast=(1, 1), gamma=(1, 1), color=(1, 1), noise=(0.05, 0.05))
    residual = noisy({'image': np.full((64, 64, 3), 128, np.uint8)}, np.random.default_rng(7))['image'] - 128 / 255
    assert abs(residual.std() - 0.05) < 0.005


def test_augment_pipeline_on_a_synthetic_batch():
    source = SyntheticStereo(32, 64, 'cpu', seed=3, photometric=None)
    batch = source.next_batch(4)
    augment = Augment(crop=(24, 48), hflip=0.5, channel_permutation=0.5, photometric=Photometric())
    out = augment(batch, np.random.default_rng(1))
    assert out['left'].shape == (4, 3, 24, 48) and out['disparity'].shape == (4, 1, 24, 48)
    assert out['valid'].dtype == torch.bool and torch.equal(torch.isnan(out['disparity']), ~out['valid'])
    assert 0 <= float(out['left'].min()) and float(out['left'].max()) <= 1
    with pytest.raises(ValueError):
        Augment(crop=(64, 64))(batch, np.random.default_rng(1))
