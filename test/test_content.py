"""Rich synthetic content: thin structures (rods, fences, rings, grids) and objects at real sizes."""
import numpy as np
import pytest

from depth_ros.synthetic import StereoCamera, random_scene, render_stereo, sample_scenes
from depth_ros.synthetic.content import N_THIN, REAL_SIZES
from depth_ros.synthetic.sampler import HELD, N_BOXES, N_ELLIPSOIDS, N_PLANES
from depth_ros.synthetic.scene import TEX_WEIGHTS


def test_basic_content_is_the_default_stream():
    a, b = sample_scenes(np.random.default_rng(5), 3), sample_scenes(np.random.default_rng(5), 3, content='basic')
    for key, value in a.arrays().items():
        np.testing.assert_array_equal(value, b.arrays()[key])
    with pytest.raises(ValueError, match='content'):
        sample_scenes(np.random.default_rng(0), 1, content='fancy')


def test_rich_scenes_have_thin_structures_and_real_sizes():
    scene = sample_scenes(np.random.default_rng(1), 40, content='rich')
    assert scene.n_boxes == N_BOXES + N_THIN and scene.n_slots == N_PLANES + N_BOXES + N_THIN + N_ELLIPSOIDS
    thin = slice(N_PLANES + N_BOXES, N_PLANES + N_BOXES + N_THIN)
    used = scene.valid[:, thin]
    assert 0.5 < used.any(1).mean() < 0.95                       # most scenes hold one structure
    smallest = np.where(used, scene.size[:, thin].min(-1), np.inf)
    assert np.nanmin(smallest) < 0.006 and np.median(smallest[used]) < 0.04   # wires and bars
    longest = np.where(used, scene.size[:, thin].max(-1), 0.0)
    assert np.mean(longest[used] > 5 * smallest[used]) > 0.8        # elongated (ring segments are short)
    person = 0.5 * np.array(REAL_SIZES['indoor'][3])
    boxes = scene.size[:, N_PLANES:N_PLANES + N_BOXES][scene.valid[:, N_PLANES:N_PLANES + N_BOXES]]
    assert (np.abs(boxes / person - 1.0).max(-1) < 0.101).any()    # someone person-sized stands somewhere


def test_held_scenes_are_rich_scenes_with_a_near_flat_object_facing_the_camera():
    """content 'held' = the same seed's 'rich' scene, plus (in most scenes) the last box slot a flat
    object 0.35-2 m ahead, facing the camera, that covers a good part of the view: rendered, it is
    the nearest surface and its depth obeys the plane it lies in."""
    rich, held = (sample_scenes(np.random.default_rng(2), 60, content=c) for c in ('rich', 'held'))
    slot = HELD
    changed = ~np.isclose(rich.center, held.center).all(-1) | (rich.valid != held.valid)
    moved = ~np.isclose(rich.center, held.center).all(-1)
    assert set(np.nonzero(changed)[1]) == {slot} and 0.5 < moved[:, slot].mean() < 0.9
    np.testing.assert_array_equal(held.valid[:, slot], moved[:, slot])   # no held object: the slot is empty
    for key in ('texture', 'light', 'ambient'):
        np.testing.assert_array_equal(rich.arrays()[key], held.arrays()[key])
    c, size, normal = held.center[moved[:, slot], slot], held.size[moved[:, slot], slot], \
        held.rot[moved[:, slot], slot][..., 2]
    assert (c[:, 2] > 0.3).all() and (c[:, 2] < 2.1).all() and (size[:, 2] < 0.031).all()
    assert (np.abs(normal[:, 2]) > np.cos(np.radians(60))).all()      # faces the camera
    cam = StereoCamera(160, 120, 100.0, 100.0, 79.5, 59.5, 0.1)
    i = int(np.argmax(moved[:, slot] & (np.abs(held.center[:, slot, :2]).max(-1) < 0.2 * held.center[:, slot, 2])))
    depth = render_stereo(held.map(lambda a: a[i:i + 1]), cam)['depth']
    v, u = np.mgrid[:120, :160]
    rays = np.stack([(u - 79.5) / 100.0, (v - 59.5) / 100.0, np.ones_like(depth)], -1)
    offset = (rays * depth[..., None] - held.center[i, slot]) @ held.rot[i, slot][:, 2]
    on_face = np.abs(np.abs(offset) - held.size[i, slot, 2]) < 1e-3     # on the face towards the camera
    assert on_face.mean() > 0.05 and depth[on_face].max() < 2.2 and depth[on_face].min() == depth.min()


def test_board_scenes_pose_boards_as_in_a_calibration():
    """content 'boards': the same seed's 'rich' scene around a board in ~90 % of the scenes, 0.35-2.5 m
    ahead, slanted far more than 'held' (many beyond 40 deg), half of them with a periodic pattern."""
    rich, boards = (sample_scenes(np.random.default_rng(4), 200, content=c) for c in ('rich', 'boards'))
    slot = HELD
    changed = ~np.isclose(rich.center, boards.center).all(-1) | (rich.valid != boards.valid)
    on = ~np.isclose(rich.center[:, slot], boards.center[:, slot]).all(-1)
    assert set(np.nonzero(changed)[1]) == {slot} and 0.8 < on.mean() < 0.97
    np.testing.assert_array_equal(boards.valid[:, slot], on)   # no board: the slot is empty
    depth = boards.center[on, slot, 2]
    assert depth.min() > 0.35 and depth.max() < 2.5
    slant = np.degrees(np.arccos(np.abs(boards.rot[on, slot][..., 2, 2])))
    assert slant.max() < 90 and np.mean(slant > 40) > 0.2
    periodic = boards.texture[on, slot][..., TEX_WEIGHTS][:, 1:].max(-1) > 0.85
    assert 0.35 < periodic.mean() < 0.65
    others = np.ones(boards.texture.shape[1], bool)
    others[slot] = False
    np.testing.assert_array_equal(rich.texture[:, others], boards.texture[:, others])


def test_rich_scene_renders_exact_thin_geometry():
    """A thin structure is hit where the ray caster says, and its disparity obeys d = f B / Z."""
    cam = StereoCamera(160, 120, 125.0, 125.0, 79.5, 59.5, 0.15)
    for seed in range(12):
        scene = random_scene(seed, content='rich')
        if scene.valid[0, N_PLANES + N_BOXES:N_PLANES + N_BOXES + N_THIN].any():
            break
    frame = render_stereo(scene, cam)
    np.testing.assert_allclose(frame['disparity'] * frame['depth'], cam.fx * cam.baseline, rtol=1e-5)


def test_specular_highlights_are_bright_and_view_dependent():
    """A glossy sphere gets a highlight, and it does not move with the surface between the views
    (the right image warped by the exact disparity no longer matches there), unlike the matte one."""
    from depth_ros.synthetic import make_scene, plane, sphere, warp_right_to_left
    from depth_ros.synthetic.scene import TEX_SHININESS, TEX_SPECULAR, sample_textures

    cam = StereoCamera(160, 120, 125.0, 125.0, 79.5, 59.5, 0.3)
    tex = sample_textures(np.random.default_rng(0), (2,), scale=(1.0, 2.0), contrast=(0.05, 0.1))
    tex[1, :6] = (0.4, 0.35, 0.3, 0.45, 0.4, 0.35)     # a dull sphere
    errors, peaks = [], []
    for strength in (0.0, 0.7):
        tex[1, TEX_SPECULAR], tex[1, TEX_SHININESS] = strength, 40.0
        scene = make_scene([plane((0, 0, 6.0), (0, 0, -1), tex[0]), sphere((0, 0, 2.0), 0.6, tex[1])],
                           light=(0.2, -0.3, -1.0))
        frame = render_stereo(scene, cam)
        rec, inside = warp_right_to_left(frame['right'], frame['disparity'])
        on_sphere = inside & (frame['depth'] < 3.0) & ~frame['occlusion']
        errors.append(np.abs(rec - frame['left']).mean(-1)[on_sphere].mean())
        peaks.append(int(frame['left'][on_sphere].max()))
    assert peaks[1] > peaks[0] + 40 and errors[1] > 1.5 * errors[0], (peaks, errors)
