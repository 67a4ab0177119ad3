"""The synthetic scene engine: exact depth, stereo geometry, occlusion, numpy/torch parity, seeds."""
import math

import numpy as np
import pytest

from depth_ros.synthetic import (StereoCamera, box, make_scene, plane, pose_matrix, random_scene, rectangle,
                                 render_stereo, render_view, sample_scenes, sample_views, sphere, warp_right_to_left)
from depth_ros.synthetic.raycast import camera_rays, nearest_hit, slot_windows
from depth_ros.synthetic.sampler import held_mask

CAM = StereoCamera(width=96, height=72, fx=80.0, fy=82.0, cx=47.3, cy=35.6, baseline=0.2)


def _rays64(cam: StereoCamera) -> tuple[np.ndarray, np.ndarray]:
    """Pixel ray directions (x, y with z = 1) in float64, for independent analytic depths."""
    u, v = np.meshgrid(np.arange(cam.width, dtype=np.float64), np.arange(cam.height, dtype=np.float64))
    return (u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy


def _plane_depth(x, y, point, normal) -> np.ndarray:
    n = np.asarray(normal, float)
    z = np.dot(n, point) / (n[0] * x + n[1] * y + n[2])
    return np.where(z > 0, z, np.inf)


def _sphere_depth(x, y, center, radius) -> np.ndarray:
    c = np.asarray(center, float)
    a = x * x + y * y + 1.0
    b = x * c[0] + y * c[1] + c[2]
    disc = b * b - a * (c @ c - radius ** 2)
    return np.where(disc >= 0, (b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)


def _box_depth(x, y, center, half) -> np.ndarray:
    """Axis-aligned box, face by face: the nearest face point inside the face's bounds."""
    c, h = np.asarray(center, float), np.asarray(half, float)
    best = np.full(x.shape, np.inf)
    d = (x, y, np.ones_like(x))
    for k in range(3):
        for side in (-1.0, 1.0):
            z = (c[k] + side * h[k]) / d[k]
            inside = z > 0
            for j in range(3):
                if j != k:
                    inside &= np.abs(z * d[j] - c[j]) <= h[j]
            best = np.where(inside & (z < best), z, best)
    return best


def _interior(depth: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has no depth jump (silhouette pixels may round either way)."""
    pad = np.pad(depth, 1, mode='edge')
    ratio = np.zeros(depth.shape)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            ratio = np.maximum(ratio, np.abs(np.log(pad[dy:dy + depth.shape[0], dx:dx + depth.shape[1]] / depth)))
    return ratio < 0.02


def test_known_scene_depth_is_exact():
    tilted = np.array([0.15, -0.25, -1.0])
    prims = [plane((0, 0, 9.0), tilted), box((-0.9, 0.6, 4.0), (0.5, 0.4, 0.3)),
             sphere((0.7, -0.3, 3.0), 0.6), rectangle((0.3, 0.9, 2.5), (0.4, 0.2))]
    frame = render_stereo(make_scene(prims), CAM)
    x, y = _rays64(CAM)
    in_rectangle = (np.abs(x * 2.5 - 0.3) <= 0.4) & (np.abs(y * 2.5 - 0.9) <= 0.2)
    truth = np.minimum.reduce([_plane_depth(x, y, (0, 0, 9.0), tilted), _sphere_depth(x, y, (0.7, -0.3, 3.0), 0.6),
                               _box_depth(x, y, (-0.9, 0.6, 4.0), (0.5, 0.4, 0.3)),
                               np.where(in_rectangle, 2.5, np.inf)])
    for value in (2.5, 3.0, 3.7):   # the rectangle, sphere and box are really in the picture
        assert (np.abs(truth - value) < 0.35).sum() > 20
    rel = np.abs(frame['depth'] - truth) / truth
    inner = _interior(truth)
    assert inner.mean() > 0.85
    assert rel[inner].max() < 1e-4
    assert (rel < 1e-4).mean() > 0.99      # silhouette pixels only may differ
    np.testing.assert_allclose(frame['disparity'], CAM.fx * CAM.baseline / frame['depth'], rtol=1e-6)


def test_rotated_primitives_and_culling_match_brute_force():
    scene = sample_scenes(np.random.default_rng(11), 3)
    fx = np.array([60.0, 90.0, 45.0], np.float32)
    cx, cy = np.full(3, 31.5, np.float32), np.full(3, 23.5, np.float32)
    origin = np.array([[0, 0, 0], [0.3, -0.1, 0.2], [0, 0, 0]], np.float32)
    rot = np.stack([pose_matrix(yaw=a, pitch=0.1)[:3, :3] for a in (0.0, 0.3, -0.2)]).astype(np.float32)
    rays = camera_rays(fx, fx, cx, cy, rot, (0, 48), 64)
    culled = slot_windows(scene, origin, rot, fx, fx, cx, cy, 48, 64)
    everything = [(0, 48, 0, 64)] * scene.n_slots
    with np.errstate(all='ignore'):
        depth_culled, slot_culled = nearest_hit(scene, origin, rays, culled)
        depth_all, slot_all = nearest_hit(scene, origin, rays, everything)
    assert sum(w is not None and w != (0, 48, 0, 64) for w in culled) > 3   # culling does happen
    np.testing.assert_array_equal(depth_culled, depth_all)
    np.testing.assert_array_equal(slot_culled, slot_all)
    assert np.isfinite(depth_all).all() and depth_all.min() > 0.3


def test_right_camera_sits_at_plus_baseline():
    scene = random_scene(5)
    frame = render_stereo(scene, CAM)
    shifted = render_stereo(scene, CAM, pose=pose_matrix(x=CAM.baseline))
    np.testing.assert_array_equal(shifted['left'], frame['right'])
    np.testing.assert_allclose(shifted['depth'], frame['depth_right'], rtol=1e-6)
    # a visible left point is seen at u - d in the right view, at the same depth
    depth_seen, inside = warp_right_to_left(frame['depth_right'], frame['disparity'])
    ok = inside & ~frame['occlusion'] & _interior(frame['depth'])
    assert ok.mean() > 0.6
    assert np.median(np.abs(depth_seen[ok] / frame['depth'][ok] - 1)) < 1e-3


def _photometric_error(frame: dict, disparity: np.ndarray) -> float:
    """Mean |left - right warped by disparity| (0-1 units) over visible, textured, non-edge pixels."""
    left = frame['left'].astype(np.float32) / 255.0
    rec, inside = warp_right_to_left(frame['right'].astype(np.float32) / 255.0, disparity)
    textured = np.abs(np.diff(left.mean(-1), axis=1, prepend=0.0)) > 0.01
    keep = inside & ~frame['occlusion'] & _interior(frame['depth']) & textured
    assert keep.sum() > 300
    return float(np.abs(rec - left).mean(-1)[keep].mean())


@pytest.mark.parametrize('seed', [0, 3])
def test_right_image_warps_onto_left(seed):
    frame = render_stereo(random_scene(seed), StereoCamera(160, 120, 125.0, 125.0, 79.5, 59.5, 0.15))
    error = _photometric_error(frame, frame['disparity'])
    assert error < 0.012
    assert _photometric_error(frame, frame['disparity'] + 1.5) > 3 * error
    assert _photometric_error(frame, -frame['disparity']) > 5 * error


def test_box_occludes_wall():
    cam = StereoCamera(120, 80, 100.0, 100.0, 59.5, 39.5, 0.3)
    frame = render_stereo(make_scene([plane((0, 0, 8.0), (0, 0, -1)), box((0, 0, 3.0), (0.5, 0.5, 0.01))]), cam)
    d_wall, d_box = cam.fx * cam.baseline / 8.0, cam.fx * cam.baseline / 2.99
    occluded = frame['occlusion']
    columns = np.flatnonzero(occluded[40])
    box_left = int(np.ceil(cam.cx - 0.5 * cam.fx / 2.99))
    expected = set(range(int(np.ceil(d_wall)))) | set(range(box_left - int(round(d_box - d_wall)), box_left))
    assert abs(len(columns) - len(expected)) <= 2 and len(set(columns) ^ expected) <= 3
    assert not occluded[:, box_left:].any()        # nothing right of the box's left edge is hidden
    assert not occluded[5, int(np.ceil(d_wall)) + 1:].any()   # rows above the box: only the border band


@pytest.mark.parametrize('content, seed', [('basic', 4), ('rich', 3)])
def test_numpy_and_torch_render_the_same(content, seed):
    torch = pytest.importorskip('torch')
    scene = sample_scenes(np.random.default_rng(seed), 2, content=content)
    fx, cx, cy = (np.array(v, np.float32) for v in ([70.0, 40.0], [31.5, 30.0], [23.5, 25.0]))
    origin, rot = np.zeros((2, 3), np.float32), np.tile(np.eye(3, dtype=np.float32), (2, 1, 1))
    depth_np, rgb_np = render_view(scene, fx, fx, cx, cy, origin, rot, 48, 64)
    as_t = torch.as_tensor
    depth_t, rgb_t = render_view(scene.map(as_t), *map(as_t, (fx, fx, cx, cy, origin, rot)), 48, 64)
    np.testing.assert_allclose(depth_t.numpy(), depth_np, rtol=1e-5)
    diff = np.abs(torch.stack(rgb_t).numpy() - np.stack(rgb_np))
    assert diff.max() < 1e-3 and np.mean(diff > 1 / 255) < 1e-3


def test_held_mask_is_the_same_on_numpy_and_torch():
    """The held board's pixels (content 'boards'), as the renders store them and the torch source
    emits them: nearer than the scene without the board, in most scenes, the same on both renderers."""
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(5)
    scene, view = sample_views(rng, 6, 48, 64, hfov_deg=(40.0, 70.0), content='boards')
    mask_np = held_mask(scene, view, render_view(scene, **view)[0])
    as_t = torch.as_tensor
    view_t = {k: as_t(v) if isinstance(v, np.ndarray) else v for k, v in view.items()}
    scene_t = scene.map(as_t)
    mask_t = held_mask(scene_t, view_t, render_view(scene_t, **view_t)[0])
    assert mask_t.dtype == torch.bool and np.mean(mask_t.numpy() != mask_np) < 1e-3
    assert (mask_np.mean((1, 2)) > 0.01).sum() >= 4


def test_seeds_are_deterministic():
    a, b = render_stereo(random_scene(7), CAM), render_stereo(random_scene(7), CAM)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a['left'], render_stereo(random_scene(8), CAM)['left'])


def test_sampled_scenes_are_plausible():
    scene = sample_scenes(np.random.default_rng(0), 12)
    f = np.full(12, 40.0, np.float32)
    depth, _ = render_view(scene, f, f, np.full(12, 31.5, np.float32), np.full(12, 23.5, np.float32),
                           np.zeros((12, 3), np.float32), np.tile(np.eye(3, dtype=np.float32), (12, 1, 1)), 48, 64)
    assert np.isfinite(depth).all()
    assert depth.min() > 0.3 and np.median(depth) < 20.0
    assert (depth.reshape(12, -1).min(1) < 3.0).mean() > 0.5     # most scenes have something near


@pytest.fixture
def torch_synth():
    """(torch, depth_ros.training.data.synth); the numpy tests above run without torch."""
    torch = pytest.importorskip('torch')
    from depth_ros.training.data import synth
    return torch, synth


def test_synthetic_stereo_batch(torch_synth):
    torch, synth = torch_synth
    source = synth.SyntheticStereo(64, 128, 'cpu', seed=1, max_disparity=48)
    batch = source.next_batch(3)
    assert batch['left'].shape == batch['right'].shape == (3, 3, 64, 128)
    assert batch['disparity'].shape == batch['valid'].shape == (3, 1, 64, 128)
    assert 0.0 <= float(batch['left'].min()) and float(batch['left'].max()) <= 1.0
    valid = batch['valid']
    disp = batch['disparity'][valid]
    assert valid.float().mean() > 0.95 and float(disp.max()) < 48 and float(disp.min()) > 0
    assert float(batch['disparity'].nan_to_num(0).amax()) > 0.3 * 48      # disparities use the range
    expected = (batch['fx'] * batch['baseline'])[:, None, None, None] / batch['depth']
    torch.testing.assert_close(batch['disparity'][valid], expected[valid], rtol=1e-6, atol=0)
    assert torch.isnan(batch['disparity'][~valid]).all()


def test_synthetic_streams_are_seeded_and_validation_is_fixed(torch_synth):
    torch, synth = torch_synth
    a, b = synth.SyntheticStereo(32, 64, 'cpu', seed=3), synth.SyntheticStereo(32, 64, 'cpu', seed=3)
    torch.testing.assert_close(a.next_batch(2)['left'], b.next_batch(2)['left'])
    other = synth.SyntheticStereo(32, 64, 'cpu', seed=4)
    val_a, val_other = a.validation_batches(2, 2), other.validation_batches(2, 2)
    torch.testing.assert_close(val_a[1]['disparity'], val_other[1]['disparity'], equal_nan=True)
    assert not torch.equal(val_a[0]['left'], a.next_batch(2)['left'])
    stream = a.dataset(batch_size=2, num_batches=3)
    assert len(stream) == 3 and len(list(stream)) == 3


def test_synthetic_mono_canonical_depth(torch_synth):
    torch, synth = torch_synth
    source = synth.SyntheticMono(48, 64, 'cpu', seed=2, f_canonical=100.0)
    batch = source.next_batch(2)
    assert batch['image'].shape == (2, 3, 48, 64) and batch['depth'].shape == (2, 1, 48, 64)
    torch.testing.assert_close(batch['depth'] * batch['fx'][:, None, None, None] / 100.0, batch['depth_metric'])
    assert batch['valid'].all() and math.isclose(batch['f_canonical'], 100.0) and 'held' not in batch
    boards = synth.SyntheticMono(48, 64, 'cpu', seed=2, content='boards').next_batch(4)
    held = boards['held']   # the board's pixels, as in renders of content boards
    assert held.shape == (4, 1, 48, 64) and set(held.unique().tolist()) <= {0.0, 1.0} and held.sum() > 0
