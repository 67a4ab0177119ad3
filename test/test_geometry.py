"""Geometry round trips on synthetic planes with known geometry (numpy only)."""
import cv2
import numpy as np
import pytest

from depth_ros import geometry as g

K = np.array([[525.0, 0.0, 319.5], [0.0, 520.0, 241.3], [0.0, 0.0, 1.0]])
W, H = 640, 480


def plane_inverse_depth(k: np.ndarray, w: int, h: int, normal, offset: float) -> np.ndarray:
    """1/Z of the plane n.X = offset seen by camera k: linear in (u, v) (exact)."""
    rays = g.ray_grid(k, w, h).astype(np.float64)
    n = np.asarray(normal, np.float64)
    return (n[0] * rays[..., 0] + n[1] * rays[..., 1] + n[2]) / offset


def on_plane_error(xyz: np.ndarray, normal, offset: float) -> float:
    return float(np.nanmax(np.abs(xyz.astype(np.float64) @ np.asarray(normal) - offset)))


NORMAL = np.array([0.2, -0.35, 1.0]) / np.linalg.norm([0.2, -0.35, 1.0])


def test_backprojection_lies_on_plane_and_reprojects_to_pixels():
    depth = (1.0 / plane_inverse_depth(K, W, H, NORMAL, 3.0)).astype(np.float32)
    xyz = g.backproject(depth, K)
    assert xyz.shape == (H, W, 3) and xyz.dtype == np.float32
    assert on_plane_error(xyz, NORMAL, 3.0) < 1e-5
    uv = g.project(xyz, K)
    grid_u, grid_v = np.meshgrid(np.arange(W), np.arange(H))
    assert np.abs(uv[..., 0] - grid_u).max() < 1e-3 and np.abs(uv[..., 1] - grid_v).max() < 1e-3


def test_invalid_depth_gives_nan_points_and_backprojector_reuses_buffer():
    depth = np.full((H, W), 2.0, np.float32)
    depth[10, 20] = np.nan
    bp = g.Backprojector(K, W, H)
    out = np.zeros((H, W, 3), np.float32)
    res = bp(depth, out=out)
    assert res is out
    assert np.isnan(res[10, 20]).all() and np.isfinite(res[11, 20]).all()
    assert bp.matches(K, W, H) and not bp.matches(K, W // 2, H)
    with pytest.raises(ValueError, match='640x480'):
        bp(np.ones((10, 10), np.float32))
    with pytest.raises(ValueError, match='C-contiguous float32'):  # OpenCV would write elsewhere
        bp(depth, out=np.zeros((H, W, 4), np.float32)[..., :3])


def test_backprojector_appends_extra_channels_such_as_packed_colour():
    depth = (1.0 / plane_inverse_depth(K, W, H, NORMAL, 3.0)).astype(np.float32)
    depth[5, 7] = np.nan
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3)).astype(np.uint8)
    scratch = np.empty((H, W, 4), np.uint8)
    colour = g.pack_rgb(rgb, scratch)
    assert np.shares_memory(colour, scratch)  # the scratch buffer is reused
    out = np.empty((H, W, 4), np.float32)
    assert g.Backprojector(K, W, H)(depth, out, [colour]) is out
    np.testing.assert_array_equal(out[..., :3], g.backproject(depth, K))
    np.testing.assert_array_equal(out[..., 3].view(np.uint32), g.pack_rgb(rgb).view(np.uint32))
    assert np.isnan(out[5, 7, :3]).all() and not np.isnan(out[5, 7, 3])


def test_disparity_depth_round_trip_and_invalid():
    fx, b = 700.0, 0.12
    depth = (1.0 / plane_inverse_depth(K, W, H, NORMAL, 4.0)).astype(np.float32)
    disp = g.disparity_to_depth(depth, fx, b)  # its own inverse
    np.testing.assert_allclose(disp, fx * b / depth.astype(np.float64), rtol=1e-6)
    back = g.disparity_to_depth(disp, fx, b)
    assert np.abs(back - depth).max() < 1e-5 * depth.max()
    bad = g.disparity_to_depth(np.array([0.0, -1.0, np.nan, np.inf, 84.0], np.float32), fx, b)
    assert np.isnan(bad[:4]).all() and bad[4] == pytest.approx(1.0)
    for fx_bad, b_bad in [(0.0, b), (fx, 0.0), (np.nan, b), (fx, -0.1)]:
        with pytest.raises(ValueError):
            g.disparity_to_depth(disp, fx_bad, b_bad)


def test_baseline_from_right_projection():
    p = np.array([[700.0, 0, 320, -700.0 * 0.12], [0, 700.0, 240, 0], [0, 0, 1, 0]])
    assert g.baseline_from_projection(p.ravel().tolist()) == pytest.approx(0.12)
    p[0, 3] = 0.0
    with pytest.raises(ValueError, match='baseline'):
        g.baseline_from_projection(p)
    p[0, 3] = np.nan  # issue 12: was reported as "is 0"
    with pytest.raises(ValueError, match='P.3. .* is nan'):
        g.baseline_from_projection(p)
    p[0, 0] = 0.0
    with pytest.raises(ValueError, match='focal'):
        g.baseline_from_projection(p)


@pytest.mark.parametrize('interp', [cv2.INTER_AREA, cv2.INTER_LINEAR])
def test_scaled_intrinsics_match_resized_images(interp):
    """Resize exact inverse depth of a plane; the scaled K must back-project it onto the plane.
    (1/Z is linear in pixels, so area/linear resampling is exact and any error is in K.)"""
    inv = plane_inverse_depth(K, W, H, NORMAL, 3.0).astype(np.float32)
    small = cv2.resize(inv, (W // 2, H // 2), interpolation=interp)
    k2 = g.scale_intrinsics(K, 0.5, 0.5)
    xyz = g.backproject(1.0 / small, k2)
    assert on_plane_error(xyz, NORMAL, 3.0) < 2e-5
    # the naive c' = c * s convention is measurably wrong here
    k_naive = K.copy()
    k_naive[:2] *= 0.5
    assert on_plane_error(g.backproject(1.0 / small, k_naive), NORMAL, 3.0) > 2e-4


def test_scale_projection_keeps_baseline():
    p = np.array([[700.0, 0, 320, -700.0 * 0.12], [0, 700.0, 240, 0], [0, 0, 1, 0]])
    p2 = g.scale_projection(p, 0.5, 0.25)
    assert g.baseline_from_projection(p2) == pytest.approx(0.12)
    assert p2[1, 1] == pytest.approx(175.0) and p2[0, 2] == pytest.approx(159.75)


def test_mask_invalid_count_outside_and_ray_grid_validation():
    values = np.array([0.0, 0.3, 1.0, 5.0, 20.0, np.inf, -2.0, np.nan], np.float32)
    assert g.count_outside(values, 0.5, 10.0) == 4  # 0.0, 0.3, -2.0 below; 20.0 above; inf, NaN not counted
    d = g.mask_invalid(values, 0.5, 10.0)
    assert d is values and np.isnan(d[[0, 1, 4, 5, 6, 7]]).all() and d[2] == 1.0 and d[3] == 5.0
    with pytest.raises(ValueError, match='intrinsics'):
        g.ray_grid(np.zeros((3, 3)), 4, 4)


def test_pack_rgb_bits():
    rgb = np.array([[[255, 0, 0], [1, 2, 3]]], np.uint8)
    packed = g.pack_rgb(rgb).view(np.uint32)
    assert packed[0, 0] == 0xFF0000 and packed[0, 1] == 0x010203
    assert g.pack_rgb(rgb[:, ::-1]).view(np.uint32)[0, 0] == 0x010203  # a strided view
    with pytest.raises(ValueError):
        g.pack_rgb(np.zeros((2, 2), np.uint8))


def test_depth_to_millimetres():
    mm = g.depth_to_millimetres(np.array([1.2344, np.nan, -1.0, 70.0, np.inf, 0.0006], np.float32))
    assert mm.dtype == np.uint16 and mm.tolist() == [1234, 0, 0, 0, 0, 1]
    out = np.full(6, 7, np.uint16)
    assert g.depth_to_millimetres(np.array([1.2344, np.nan, -1.0, 70.0, np.inf, 0.0006], np.float32), out=out) is out
    assert out.tolist() == mm.tolist()


@pytest.mark.parametrize('factor', [1, 2, 3, 4])
def test_decimation_keeps_exact_geometry(factor):
    depth = (1.0 / plane_inverse_depth(K, W, H, NORMAL, 3.0)).astype(np.float32)
    small = g.decimate(depth, factor)
    kd = g.decimate_intrinsics(K, factor)
    assert small.shape == (len(range((factor - 1) // 2, H, factor)), len(range((factor - 1) // 2, W, factor)))
    assert on_plane_error(g.backproject(np.ascontiguousarray(small), kd), NORMAL, 3.0) < 1e-5


def test_warp_right_to_left_shifts_rows_and_masks_what_it_cannot_see():
    """A right image that is a quadratic in u, warped by a constant 2.25 px, gives the left one
    (linear interpolation within 0.01 grey of the chord); matches left of the image and NaN
    disparities are masked; nearest keeps integer values; colour and uint8 work."""
    u = np.arange(40, dtype=np.float32)
    right = np.tile(0.5 * u * u, (6, 1))
    disparity = np.full((6, 40), 2.25, np.float32)
    disparity[0, 10] = np.nan
    warped, inside = g.warp_right_to_left(right, disparity)
    m = u - 2.25
    chord = 0.5 * (np.floor(m) ** 2 * (np.ceil(m) - m) + np.ceil(m) ** 2 * (m - np.floor(m)))
    assert inside[1:, 3:].all() and not inside[:, :2].any() and not inside[0, 10]
    np.testing.assert_allclose(warped[1, 3:], chord[3:], atol=0.01)
    near, _ = g.warp_right_to_left(right, disparity, cv2.INTER_NEAREST)
    np.testing.assert_array_equal(near[1, 3:], right[1, 1:38])  # u - 2.25 rounds to u - 2
    rgb, inside_rgb = g.warp_right_to_left(np.dstack([right.astype(np.uint8)] * 3), disparity)
    assert rgb.shape == (6, 40, 3) and rgb.dtype == np.float32 and (inside_rgb == inside).all()
