"""Visualisation on known inputs: colour mapping, colour bar, point splatting, figures."""
import cv2
import numpy as np
import pytest

from depth_ros import geometry, viz


def test_colorize_depth_maps_range_ends_and_blacks_out_invalid():
    depth = np.array([[1.0, 3.0, 5.0, np.nan, -1.0, 0.0, 9.0]], np.float32)
    rgb = viz.colorize_depth(depth, 1.0, 5.0)
    assert rgb.shape == (1, 7, 3) and rgb.dtype == np.uint8
    lut = cv2.cvtColor(cv2.applyColorMap(np.array([[0, 127, 255]], np.uint8), cv2.COLORMAP_TURBO),
                       cv2.COLOR_BGR2RGB)[0]
    np.testing.assert_array_equal(rgb[0, 0], lut[0])      # lo -> first turbo colour
    np.testing.assert_array_equal(rgb[0, 1], lut[1])      # middle
    np.testing.assert_array_equal(rgb[0, 2], lut[2])      # hi -> last turbo colour
    assert not rgb[0, 3:6].any()                           # NaN, negative, zero -> black
    np.testing.assert_array_equal(rgb[0, 6], lut[2])      # beyond hi is clamped
    assert rgb[0, 0, 2] > rgb[0, 0, 0] and rgb[0, 2, 0] > rgb[0, 2, 2]  # near blue, far red


def test_robust_range_ignores_outliers_and_invalid():
    depth = np.linspace(1, 2, 1000, dtype=np.float32).reshape(10, 100)
    depth[0, :5] = 1e4
    depth[1, :5] = np.nan
    lo, hi = viz.depth_range(depth, percentiles=(1, 99))
    assert 0.99 < lo < 1.02 and 1.97 < hi < 2.01
    assert viz.depth_range(np.full((2, 2), np.nan)) == (0.0, 1.0)
    lo, hi = viz.depth_range(np.full((3, 3), 2.0, np.float32))
    assert hi > lo == 2.0
    with pytest.raises(ValueError, match='hi > lo'):
        viz.colorize_depth(depth, 2.0, 2.0)


def test_color_bar_top_is_far_and_has_labels():
    bar = viz.color_bar(200, 0.5, 4.0)
    assert bar.shape == (200, 84, 3)
    strip = bar[:, 4:22]
    top, bottom = strip[12, 9].astype(int), strip[-12, 9].astype(int)
    assert top[0] > top[2] and bottom[2] > bottom[0]       # red (far) on top, blue below
    assert (bar[:, 30:] > 128).sum() > 100                  # tick labels were drawn
    np.testing.assert_allclose(viz._nice_ticks(0.5, 4.0), [1, 2, 3, 4])


def test_look_at_identity_and_orbit():
    r, t = viz.look_at((0, 0, 0), (0, 0, 5))
    np.testing.assert_allclose(r, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(t, 0, atol=1e-12)
    r, t = viz.look_at((0, -2, 0), (0, 0, 0), up=(0, 0, 1))  # above, looking down (+y)
    np.testing.assert_allclose(r @ np.array([0, 0, 0]) + t, [0, 0, 2], atol=1e-12)
    np.testing.assert_allclose(r @ np.array([0.0, 1.0, 0.0]), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(r @ np.array([0.0, 0.0, 1.0]), [0, -1, 0], atol=1e-12)  # forward is up
    with pytest.raises(ValueError, match='parallel'):
        viz.look_at((0, -2, 0), (0, 0, 0))


def test_render_points_z_buffer_keeps_nearest():
    k = np.array([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
    pts = np.array([[0, 0, 2.0], [0, 0, 1.0], [0, 0, 3.0], [0.5, 0, 1.0], [np.nan, 0, 1], [0, 0, -1]])
    cols = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9], [1, 1, 1], [2, 2, 2]], np.uint8)
    img = viz.render_points(pts, cols, np.eye(3), np.zeros(3), k, (100, 80), point_size=1)
    np.testing.assert_array_equal(img[40, 50], [0, 255, 0])   # the nearest of three on one ray
    np.testing.assert_array_equal(img[40, 99], [0, 0, 0])     # x=0.5 at z=1 -> u=100 is outside
    assert (img.reshape(-1, 3).any(axis=1)).sum() == 1
    big = viz.render_points(pts[:2], cols[:2], np.eye(3), np.zeros(3), k, (100, 80), point_size=3)
    assert (big.reshape(-1, 3).any(axis=1)).sum() == 9


def test_preview_of_a_plane_shows_it_and_the_camera():
    k = np.array([[60.0, 0, 39.5], [0, 60.0, 29.5], [0, 0, 1]])
    depth = np.full((60, 80), 3.0, np.float32)
    depth[:10] = np.nan
    pts = geometry.backproject(depth, k)
    cols = np.zeros((60, 80, 3), np.uint8)
    cols[..., 1] = 200
    img = viz.preview_cloud(pts, cols, size=(240, 180))
    assert img.shape == (180, 240, 3)
    green = (img[..., 1] == 200) & (img[..., 0] == 0)
    assert green.sum() > 2000                               # the plane covers a good area
    white = (img > 150).all(axis=2)
    assert white.sum() > 20                                 # the source camera's frustum is drawn
    ys, xs = np.nonzero(white)
    assert xs.mean() > 120 and ys.mean() > 90               # seen from its upper left: bottom right
    empty = viz.preview_cloud(np.full((4, 4, 3), np.nan, np.float32), cols[:4, :4], size=(120, 90))
    assert empty.shape == (90, 120, 3)
    assert viz.cloud_view(np.full((4, 4, 3), np.nan, np.float32)) is None
    # one view for two clouds: a plane half as wide at the same depth covers less of the picture
    view = viz.cloud_view(pts, (240, 180))
    np.testing.assert_array_equal(viz.preview_cloud(pts, cols, view), img)
    near = viz.preview_cloud(geometry.backproject(depth / 2, k) + np.float32([0, 0, 1.5]), cols, view)
    assert ((near[..., 1] == 200) & (near[..., 0] == 0)).sum() < green.sum()


def test_tile_and_write_image(tmp_path):
    a = np.zeros((30, 40, 3), np.uint8)
    a[..., 0] = 255
    b = np.full((60, 40), 128, np.uint8)
    fig = viz.tile([('red', a), ('grey', b), ('red again', a)], columns=2, cell=(80, 60), title='demo')
    assert fig.shape == (28 + 2 * (60 + 22), 160, 3)
    cell = fig[28 + 22:28 + 22 + 60, 0:80]
    assert (cell[..., 0] == 255).sum() > 0.6 * 80 * 60      # red panel fitted (aspect kept) into the cell
    path = viz.write_image(tmp_path / 'fig.png', fig)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, fig)
    with pytest.raises(OSError, match='does not exist'):
        viz.write_image(tmp_path / 'missing' / 'x.png', fig)
    with pytest.raises(ValueError, match='uint8'):
        viz.tile([('f', np.zeros((4, 4), np.float32))], columns=1)


def test_rviz_config_parses_and_shows_our_topics():
    import yaml
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).parent.parent / 'config' / 'depth_ros.rviz').read_text())
    manager = config['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == 'camera_left_optical_frame'
    displays = {d['Name']: d for d in manager['Displays']}
    topics = {d['Topic']['Value']: d for d in displays.values() if isinstance(d.get('Topic'), dict)}
    assert set(topics) == {'/points', '/depth/image', '/left/image_rect'}
    clouds = [d for d in displays.values() if d['Class'] == 'rviz_default_plugins/PointCloud2']
    assert [(c['Color Transformer'], c['Enabled']) for c in clouds] == [('RGB8', True), ('AxisColor', False)]
    assert all(c['Axis'] == 'Z' for c in clouds)
    assert displays['Depth (0-10 m)']['Class'] == 'rviz_default_plugins/Image'
    assert all(d['Topic']['Reliability Policy'] == 'Reliable' for d in displays.values() if 'Topic' in d)
    assert manager['Views']['Current']['Class'] == 'rviz_default_plugins/Orbit'
