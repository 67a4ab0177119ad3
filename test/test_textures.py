"""Texture bank of real photographs: collection (deny-list), mip sampling, stereo-consistent mapping."""
import cv2
import numpy as np
import pytest

from depth_ros.synthetic import StereoCamera, make_scene, plane, render_stereo, render_view, sample_scenes, sphere
from depth_ros.synthetic.scene import TEX_PHOTO, TEX_PHOTO_SCALE, sample_textures
from depth_ros.synthetic.texture import photo_color
from depth_ros.synthetic.textures import DENY, PhotoBank, candidates, collect


def _photo(seed: int, size: int = 300) -> np.ndarray:
    """A random smooth 'photograph' (size, size, 3) uint8 BGR."""
    noise = np.random.default_rng(seed).random((size // 10, size // 10, 3)).astype(np.float32)
    return (cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize('name', ['aloeL.jpg', 'aloeGT.png', 'left01.jpg', 'right14.jpg', 'motorcycle_left.png',
                                  'motorcycle_disp.npz.png', 'tsukuba_l.png', 'chessboard.png', 'opencv-logo.png'])
def test_reserved_and_calibration_images_are_denied(name):
    assert DENY.search(name)


def test_collect_writes_only_allowed_photographs(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('garden.jpg', 'aloeL.jpg', 'left03.jpg', 'motorcycle_right.png'):
        cv2.imwrite(str(src / name), _photo(len(name)))
    cv2.imwrite(str(src / 'flat.png'), np.full((300, 300, 3), 90, np.uint8))        # no texture: skipped
    assert [p.name for p in candidates([src])] == ['flat.png', 'garden.jpg']
    count = collect(tmp_path / 'bank', [src], size=64)
    assert count == 1 and len(list((tmp_path / 'bank').glob('*.png'))) == 1
    bank = PhotoBank.load(tmp_path / 'bank')
    assert bank.count == 1 and bank.size == 64 and bank.levels == 7
    assert bank.texels.shape == (3, PhotoBank.per_photo(64))
    assert PhotoBank.load(tmp_path / 'missing') is None


def test_photo_sampling_hits_texels_and_mip_levels():
    images = [_photo(1, 16)[..., ::-1].copy(), _photo(2, 16)[..., ::-1].copy()]
    bank = PhotoBank.from_images(images)
    ys, xs = np.mgrid[0:16, 0:16]
    u, v = ((xs + 0.5) / 16).astype(np.float32), ((ys + 0.5) / 16).astype(np.float32)
    fine = np.stack(photo_color(bank, np.full(u.shape, 1.0, np.float32), u, v, np.full(u.shape, 1e-3, np.float32)), -1)
    np.testing.assert_allclose(fine, images[1] / 255.0, atol=1e-5)                 # level 0 at texel centres
    coarse = np.stack(photo_color(bank, np.zeros(u.shape, np.float32), u + 3.0, v - 2.0,
                                  np.full(u.shape, 1.0, np.float32)), -1)            # one photo per pixel, repeated
    mean = images[0].reshape(-1, 3).mean(0) / 255.0
    np.testing.assert_allclose(coarse, np.broadcast_to(mean, coarse.shape), atol=2e-3)


def _photo_plane_scene(bank: PhotoBank):
    tex = sample_textures(np.random.default_rng(0), (2,), scale=(1.0, 2.0))
    tex[:, TEX_PHOTO], tex[:, TEX_PHOTO_SCALE] = (0, 1), (0.5, 2.0)
    scene = make_scene([plane((0, 0, 4.0), (0, 0, -1), tex[0]), sphere((0.3, 0.1, 2.5), 0.5, tex[1])])
    scene.photos = bank
    return scene


def test_photo_textures_are_the_same_surface_in_both_views():
    bank = PhotoBank.from_images([_photo(3, 64)[..., ::-1].copy(), _photo(4, 64)[..., ::-1].copy()])
    frame = render_stereo(_photo_plane_scene(bank), StereoCamera(160, 120, 125.0, 125.0, 79.5, 59.5, 0.15))
    from depth_ros.synthetic import warp_right_to_left

    errors = []
    for offset in (0.0, 1.5):
        rec, inside = warp_right_to_left(frame['right'], frame['disparity'] + offset)
        keep = inside & ~frame['occlusion']
        keep[:, 1:] &= np.abs(np.diff(frame['depth'], axis=1)) < 0.01
        errors.append(np.abs(rec - frame['left']).mean(-1)[keep].mean() / 255.0)
    assert errors[0] < 0.012 and errors[1] > 2 * errors[0], errors


def test_photo_textures_render_the_same_on_numpy_and_torch():
    torch = pytest.importorskip('torch')
    bank = PhotoBank.from_images([_photo(5, 32)[..., ::-1].copy()])
    scene = sample_scenes(np.random.default_rng(2), 2, photos=bank, photo_prob=0.8)
    fx, cx, cy = (np.array(v, np.float32) for v in ([70.0, 40.0], [31.5, 30.0], [23.5, 25.0]))
    origin, rot = np.zeros((2, 3), np.float32), np.tile(np.eye(3, dtype=np.float32), (2, 1, 1))
    _, rgb_np = render_view(scene, fx, fx, cx, cy, origin, rot, 48, 64)
    as_t = torch.as_tensor
    _, rgb_t = render_view(scene.map(as_t), *map(as_t, (fx, fx, cx, cy, origin, rot)), 48, 64)
    diff = np.abs(torch.stack(rgb_t).numpy() - np.stack(rgb_np))
    assert diff.max() < 2e-3 and np.mean(diff > 1 / 255) < 2e-3


def test_training_batches_carry_photos_on_the_device():
    torch = pytest.importorskip('torch')
    from depth_ros.training.data.synth import SyntheticStereo

    bank = PhotoBank.from_images([_photo(6, 32)[..., ::-1].copy()])
    plain = SyntheticStereo(32, 48, 'cpu', 0, 64.0, photometric=None, content='rich').next_batch(2)
    photo = SyntheticStereo(32, 48, 'cpu', 0, 64.0, photometric=None, content='rich', photos=bank).next_batch(2)
    assert isinstance(photo['left'], torch.Tensor) and photo['left'].shape == (2, 3, 32, 48)
    assert not torch.equal(plain['left'], photo['left'])


@pytest.mark.parametrize('content', ['basic', 'rich'])
def test_the_sky_never_shows_a_photograph(content):
    """The dome (last slot) stays procedural: an index slip once put photos on 52 % of the skies."""
    bank = PhotoBank.from_images([_photo(s, 64)[..., ::-1].copy() for s in range(3)])
    scenes = sample_scenes(np.random.default_rng(0), 200, photos=bank, photo_prob=0.5, content=content)
    assert (scenes.texture[:, -1, TEX_PHOTO] == -1).all()
    assert (scenes.texture[:, :-1, TEX_PHOTO] >= 0).mean() > 0.3
