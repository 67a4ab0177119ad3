"""Imperfect-camera artifacts on rendered pairs: images change like a real rig's, ground truth does not."""
import numpy as np
import pytest
import torch

from depth_ros.synthetic import StereoCamera, random_scene, render_stereo
from depth_ros.synthetic.camera import CameraArtifacts, shift_rows
from depth_ros.training.data.augment import Augment

# every artifact off (the log-uniform noise ranges cannot hold 0: 1e-12 is none)
NONE = dict(vertical_offset=0.0, blur_prob=0.0, vignetting=(0.0, 0.0), exposure=(1.0, 1.0), exposure_lr=0.0,
            white_balance=0.0, white_balance_lr=0.0, shot_noise=(1e-12, 1e-12), read_noise=(1e-12, 1e-12),
            gamma=(2.2, 2.2), s_curve=(0.0, 0.0), grayscale_prob=0.0, jpeg_prob=0.0)


@pytest.fixture(scope='module')
def pair():
    frame = render_stereo(random_scene(4), StereoCamera(width=160, height=120, fx=120, fy=120, cx=79.5, cy=59.5))
    return {'left': frame['left'], 'right': frame['right'], 'disparity': frame['disparity'],
            'disparity_right': frame['disparity_right']}


def test_no_artifacts_is_the_identity(pair):
    out = CameraArtifacts(**NONE)(pair, np.random.default_rng(0))
    for key in ('left', 'right'):
        assert out[key].dtype == np.uint8
        assert np.abs(out[key].astype(int) - pair[key]).max() <= 1


def test_default_camera_keeps_ground_truth_and_changes_images(pair):
    out = CameraArtifacts()(pair, np.random.default_rng(1))
    assert out['disparity'] is pair['disparity'] and out['disparity_right'] is pair['disparity_right']
    assert out['left'].shape == pair['left'].shape and out['left'].dtype == np.uint8
    assert np.abs(out['left'].astype(int) - pair['left']).mean() > 1.0
    again = CameraArtifacts()(pair, np.random.default_rng(1))
    assert all(np.array_equal(out[k], again[k]) for k in ('left', 'right'))   # seeded


def test_left_and_right_exposures_differ_within_the_range(pair):
    ratios = []
    for seed in range(6):
        out = CameraArtifacts(**{**NONE, 'exposure_lr': 0.15})(pair, np.random.default_rng(seed))
        ratios.append(out['right'].mean() / out['left'].mean() / (pair['right'].mean() / pair['left'].mean()))
    assert 0.85 ** (1 / 2.2) - 0.02 < min(ratios) and max(ratios) < 1.15 ** (1 / 2.2) + 0.02
    assert np.ptp(ratios) > 0.02


def test_read_noise_has_the_set_level(pair):
    """Read noise sigma s (linear light) is 255 * s * d(x^(1/2.2))/dx grey levels after the tone curve."""
    flat = {'left': np.full((64, 64, 3), 128, np.uint8), 'right': np.full((64, 64, 3), 128, np.uint8)}
    linear = (128 / 255) ** 2.2
    for sigma in (3e-3, 1e-2):
        got = CameraArtifacts(**{**NONE, 'read_noise': (sigma, sigma)})(flat, np.random.default_rng(0))['left'].std()
        assert got == pytest.approx(255 * sigma / 2.2 * linear ** (1 / 2.2 - 1), rel=0.1)


def test_vertical_offset_moves_only_the_right_view():
    image = np.zeros((40, 30, 3), np.float32)
    image[20:] = 1.0
    moved = shift_rows(image, 1.0)
    assert np.allclose(moved[21:], 1.0) and np.allclose(moved[:20], 0.0)   # one row down, exactly
    half = shift_rows(image, 0.5)
    assert 0.3 < half[20, 5, 0] < 0.7
    stripes = {'left': (image * 255).astype(np.uint8), 'right': (image * 255).astype(np.uint8)}
    out = CameraArtifacts(**{**NONE, 'vertical_offset': 0.5})(stripes, np.random.default_rng(3))
    assert np.array_equal(out['left'], stripes['left']) and not np.array_equal(out['right'], stripes['right'])


def test_augment_applies_the_camera_to_numpy_samples_only(pair):
    out = Augment(hflip=0.0, channel_permutation=0.0, camera=CameraArtifacts())(pair, np.random.default_rng(0))
    assert out['left'].dtype == np.uint8 and not np.array_equal(out['left'], pair['left'])
    assert out['disparity'] is pair['disparity']
    batch = {'left': torch.zeros(1, 3, 8, 8), 'right': torch.zeros(1, 3, 8, 8)}
    with pytest.raises(TypeError, match='numpy samples'):
        Augment(camera=CameraArtifacts())(batch, np.random.default_rng(0))


def test_real_camera_recipes_turn_the_camera_on():
    from depth_ros.training.config import load_recipe
    from depth_ros.training.streams import make_augment

    for name in ('anynet_real', 'mbv2_fbnet_real'):
        cfg = load_recipe(name)
        assert cfg.data.source.startswith('rendered:')
        assert isinstance(make_augment(cfg.data.augment).camera, CameraArtifacts)


def test_real_camera_recipe_streams_rendered_pairs_through_the_camera(tmp_path):
    """anynet_real's data path: rendered rich pairs -> reader stream -> crops, flips, camera artifacts."""
    from depth_ros.training.config import apply_overrides, load_recipe
    from depth_ros.training.data.rendered import Look, render_dataset
    from depth_ros.training.streams import train_stream

    root = render_dataset(tmp_path / 'r', 'stereo', 8, (64, 96), seed=1, max_disparity=48.0, workers=1,
                          look=Look(hfov=(15.0, 100.0), content='rich'))
    cfg = apply_overrides(load_recipe('anynet_real'), [f'data.source=rendered:{root}', 'data.height=48',
                                                       'data.width=64', 'data.batch_size=2', 'data.workers=0'])
    batch = train_stream(cfg, 'stereo', torch.device('cpu')).next_batch()
    assert batch['left'].shape == (2, 3, 48, 64) and batch['disparity'].shape == (2, 1, 48, 64)
    assert torch.isfinite(batch['disparity']).any()
