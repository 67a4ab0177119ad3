"""Datasets rendered to disk with the numpy renderer and read back (the CPU training path)."""
import numpy as np
import pytest

from depth_ros.training.data import open_reader
from depth_ros.training.data.rendered import Look, render_dataset


def test_stereo_render_reads_back_exact_geometry(tmp_path):
    root = render_dataset(tmp_path / 's', 'stereo', 8, (64, 128), seed=3, max_disparity=64.0, workers=1)
    reader = open_reader('rendered', str(root))
    assert len(reader) == 8 and reader.kind == 'stereo'
    s = reader[5]
    assert s['left'].shape == (64, 128, 3) and s['left'].dtype == np.uint8
    d = s['disparity']
    assert np.nanmax(d) < 64.0 and np.isfinite(d).mean() > 0.9
    # warping the right view by the left disparity reproduces the left view on most pixels
    v, u = np.nonzero(np.isfinite(d))
    ur = np.rint(u - d[v, u]).astype(int)
    inside = ur >= 0
    err = np.abs(s['left'][v[inside], u[inside]].astype(int) - s['right'][v[inside], ur[inside]].astype(int))
    assert np.median(err) <= 3
    # the same seed renders the same set; resuming keeps existing files
    again = render_dataset(tmp_path / 's2', 'stereo', 8, (64, 128), seed=3, max_disparity=64.0, workers=1)
    np.testing.assert_array_equal(open_reader('rendered', str(again))[5]['left'], s['left'])


def test_mono_render_has_metric_depth_and_focal(tmp_path):
    reader = open_reader('rendered', str(render_dataset(tmp_path / 'm', 'mono', 4, (48, 64), seed=1, workers=1)))
    s = reader[0]
    assert reader.kind == 'mono' and s['image'].shape == (48, 64, 3) and s['fx'] > 0
    assert 0.3 < np.nanmin(s['depth']) and np.nanmax(s['depth']) < 65.0



def test_mono_boards_store_the_held_objects_pixels(tmp_path):
    """Content 'boards' stores the board's pixels ('held'): present in most samples, a plane there
    (inverse depth affine in the pixel coordinates) nearer than the scene behind; other contents and
    renders without the key (other contents, or written before it existed) read back all zeros."""
    reader = open_reader('rendered', str(render_dataset(tmp_path / 'b', 'mono', 16, (48, 64), seed=4, workers=1,
                                                        look=Look(content='boards'))))
    shares = []
    for i in range(len(reader)):
        s = reader[i]
        held = s['held'] > 0.5
        assert s['held'].shape == s['depth'].shape and s['held'].dtype == np.float32
        shares.append(held.mean())
        inner = held & ~np.isnan(s['depth'])
        if inner.sum() < 200:
            continue
        v, u = np.nonzero(inner)
        a = np.c_[u, v, np.ones(len(u))]
        inv = 1.0 / s['depth'][inner]
        fit = a @ np.linalg.lstsq(a, inv, rcond=None)[0]
        assert np.median(np.abs(fit - inv) / inv) < 0.01       # the board's face (its edges are the rest)
    assert np.mean(np.array(shares) > 0) >= 0.5
    basic = open_reader('rendered', str(render_dataset(tmp_path / 'm', 'mono', 8, (48, 64), seed=1, workers=1)))
    with np.load(basic.items[0]) as z:
        assert 'held' not in z.files
    assert not basic[0]['held'].any() and basic[0]['held'].shape == (48, 64)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='render the dataset'):
        open_reader('rendered', str(tmp_path))


def test_photo_textures_and_narrow_lenses(tmp_path):
    """A photo bank (as ``depth-ros-render textures`` collects it) changes the images, and narrow
    fields of view give every sample a long focal length within the range."""
    import cv2

    from depth_ros.training.cli.render import main
    from depth_ros.training.data.rendered import Look

    src = tmp_path / 'photos'
    src.mkdir()
    rng = np.random.default_rng(0)
    photo = cv2.resize(rng.random((30, 30, 3)).astype(np.float32), (300, 300), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(src / 'garden.jpg'), (photo.clip(0, 1) * 255).astype(np.uint8))
    from depth_ros.synthetic.textures import collect
    assert collect(tmp_path / 'bank', [src], size=64) == 1
    look = Look(hfov=(15.0, 20.0), textures=str(tmp_path / 'bank'), photo_prob=1.0)
    plain = open_reader('rendered', str(render_dataset(tmp_path / 'p', 'mono', 8, (48, 64), seed=2, workers=1,
                                                       look=Look(hfov=(15.0, 20.0)))))
    photos = open_reader('rendered', str(render_dataset(tmp_path / 't', 'mono', 8, (48, 64), seed=2, workers=1,
                                                        look=look)))
    for reader in (plain, photos):
        fx = np.array([reader[i]['fx'] for i in range(8)])
        low, high = 0.5 * 64 / np.tan(np.radians(10.0)), 0.5 * 64 / np.tan(np.radians(7.5))
        assert (low - 0.1 <= fx).all() and (fx <= high + 0.1).all()
    assert not np.array_equal(plain[0]['image'], photos[0]['image'])
    with pytest.raises(SystemExit):
        main(['stereo'])                                   # no output folder
