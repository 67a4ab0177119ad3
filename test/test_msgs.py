"""Message conversions (the fallback used without cv_bridge; cv_bridge when importable)."""
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs_py import point_cloud2 as pc2
from std_msgs.msg import Header

from depth_ros import geometry, msgs

RNG = np.random.default_rng(0)


def sample(encoding: str, h: int = 5, w: int = 7) -> np.ndarray:
    dtype, ch = msgs.ENCODINGS[encoding]
    shape = (h, w) if ch == 1 else (h, w, ch)
    if dtype == np.float32:
        return RNG.normal(size=shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape).astype(dtype)


@pytest.mark.parametrize('encoding', sorted(msgs.ENCODINGS))
def test_round_trip_every_encoding(encoding):
    arr = sample(encoding)
    msg = msgs.array_to_image(arr, encoding, Header(frame_id='cam'))
    assert msg.step == arr.shape[1] * arr.itemsize * (arr.shape[2] if arr.ndim == 3 else 1)
    assert msg.header.frame_id == 'cam'
    np.testing.assert_array_equal(msgs.image_to_array(msg), arr)


def test_padded_rows_and_big_endian():
    arr = sample('16UC1')
    msg = Image(height=5, width=7, encoding='16UC1', is_bigendian=True, step=16)
    padded = np.zeros((5, 16), np.uint8)
    padded[:, :14] = arr.astype('>u2').view(np.uint8).reshape(5, 14)
    msg.data = msgs.to_bytes(padded)
    np.testing.assert_array_equal(msgs.image_to_array(msg), arr)


def test_rgb8_conversion_from_colour_and_grey():
    rgb = sample('rgb8')
    bgr_msg = msgs.array_to_image(np.ascontiguousarray(rgb[:, :, ::-1]), 'bgr8')
    np.testing.assert_array_equal(msgs.image_to_rgb8(bgr_msg), rgb)
    grey = sample('mono8')
    out = msgs.image_to_rgb8(msgs.array_to_image(grey, 'mono8'))
    assert out.shape == (5, 7, 3) and (out[..., 1] == grey).all()
    with pytest.raises(msgs.MessageError, match='32FC1'):
        msgs.image_to_rgb8(msgs.array_to_image(sample('32FC1'), '32FC1'))


def test_16uc1_is_read_like_the_identical_mono16():
    """Issue 12: 16UC1 input was rejected while mono16 (the same bytes) was accepted."""
    grey = sample('mono16')
    expected = msgs.image_to_rgb8(msgs.array_to_image(grey, 'mono16'))
    np.testing.assert_array_equal(msgs.image_to_rgb8(msgs.array_to_image(grey, '16UC1')), expected)
    assert expected.max() == 255


@pytest.mark.parametrize('bad, match', [
    (dict(encoding='yuv422'), 'unsupported image encoding'),
    (dict(step=3), 'step'),
    (dict(height=50), 'bytes of data'),
    (dict(height=0), 'empty'),
])
def test_bad_images_raise_clear_errors(bad, match):
    msg = msgs.array_to_image(sample('rgb8'), 'rgb8')
    for k, v in bad.items():
        setattr(msg, k, v)
    with pytest.raises(msgs.MessageError, match=match):
        msgs.image_to_array(msg)


def test_array_to_image_checks_dtype():
    with pytest.raises(msgs.MessageError):
        msgs.array_to_image(np.zeros((2, 2), np.float64), '32FC1')
    with pytest.raises(msgs.MessageError):
        msgs.array_to_image(np.zeros((2, 2, 3), np.uint8), 'mono8')


def test_organized_cloud_reads_back_with_sensor_msgs_py_and_cloud_arrays():
    h, w = 4, 6
    xyz = RNG.normal(size=(h, w, 3)).astype(np.float32)
    xyz[1, 2] = np.nan
    rgb = RNG.integers(0, 255, (h, w, 3)).astype(np.uint8)
    pts = np.concatenate([xyz, geometry.pack_rgb(rgb)[..., None]], axis=2)
    cloud = msgs.pointcloud2(pts, Header(frame_id='left_optical'))
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (h, w, 16, 16 * w)
    assert not cloud.is_dense and [f.name for f in cloud.fields] == ['x', 'y', 'z', 'rgb']
    back = pc2.read_points_numpy(cloud, field_names=('x', 'y', 'z'), skip_nans=False).reshape(h, w, 3)
    np.testing.assert_array_equal(back, xyz)
    packed = pc2.read_points(cloud, field_names=('rgb',), skip_nans=False)['rgb'].reshape(h, w)
    assert (packed.view(np.uint32) >> 16 & 255 == rgb[..., 0]).all()
    xyz_only = msgs.pointcloud2(xyz, Header())
    assert xyz_only.point_step == 12 and len(xyz_only.data) == h * w * 12
    # and back (cloud_arrays)
    back_xyz, back_rgb = msgs.cloud_arrays(cloud)
    np.testing.assert_array_equal(back_xyz, xyz)
    np.testing.assert_array_equal(back_rgb, rgb)
    assert msgs.cloud_arrays(xyz_only)[1] is None
    xyz_only.fields = xyz_only.fields[:2]
    with pytest.raises(msgs.MessageError, match='no x, y, z'):
        msgs.cloud_arrays(xyz_only)


def test_data_buffer_messages_share_the_buffer_and_read_back():
    """A DataBuffer's image and cloud messages take its bytes without a copy (the data is the very
    buffer, so refilling it changes the next message) and read back like the copying converters'."""
    buffer = msgs.DataBuffer()
    depth = sample('32FC1')
    np.copyto(buffer.view(depth.shape, np.float32), depth)
    image = buffer.image('32FC1', Header(frame_id='cam'))
    assert image.data is buffer.data and image.header.frame_id == 'cam'
    np.testing.assert_array_equal(msgs.image_to_array(image), depth)
    assert msgs.array_to_image(depth, '32FC1').step == image.step
    view = buffer.view(depth.shape, np.float32)
    assert view is buffer.view(depth.shape, np.float32)  # same size: nothing reallocated
    view[:] = 1.0
    assert (msgs.image_to_array(buffer.image('32FC1')) == 1.0).all()
    with pytest.raises(msgs.MessageError, match='16UC1 needs'):
        buffer.image('16UC1')
    pts = RNG.normal(size=(3, 4, 4)).astype(np.float32)
    np.copyto(buffer.view(pts.shape, np.float32), pts)
    cloud = buffer.cloud(Header())
    assert cloud.data is buffer.data and bytes(cloud.data) == bytes(msgs.pointcloud2(pts, Header()).data)
    np.testing.assert_array_equal(msgs.cloud_arrays(cloud)[0], pts[..., :3])


def camera_info(w=640, h=480, fx=500.0, tx=0.0) -> CameraInfo:
    info = CameraInfo(width=w, height=h)
    info.k = [fx, 0.0, 319.5, 0.0, fx, 239.5, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, 319.5, tx, 0.0, fx, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.header.frame_id = 'left_optical'
    return info


def test_decimated_camera_info_matches_geometry():
    info = camera_info(tx=-500.0 * 0.1)
    info.d = [0.1, 0.0, 0.0, 0.0, 0.0]
    small = msgs.decimated_camera_info(info, 2, 320, 240, info.header)
    assert (small.width, small.height) == (320, 240) and small.header.frame_id == 'left_optical'
    np.testing.assert_allclose(np.reshape(small.k, (3, 3)), geometry.decimate_intrinsics(np.reshape(info.k, (3, 3)), 2))
    assert geometry.baseline_from_projection(small.p) == pytest.approx(0.1) and small.d[0] == 0.1
    same = msgs.decimated_camera_info(info, 1, 640, 480, info.header)
    assert list(same.k) == list(info.k) and list(same.p) == list(info.p) and list(same.r) == list(info.r)


def test_camera_matrix_validation():
    assert msgs.camera_matrix(camera_info())[0, 0] == 500.0
    info = camera_info()
    info.p = [0.0] * 12  # unrectified driver: P unset, K used
    assert msgs.camera_matrix(info)[1, 1] == 500.0
    info.p = [450.0, 0.0, 300.0, 0.0, 0.0, 450.0, 200.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert msgs.camera_matrix(info)[0, 2] == 300.0 and msgs.camera_matrix(info, rectified=False)[0, 2] == 319.5
    with pytest.raises(msgs.MessageError, match='intrinsics'):
        msgs.camera_matrix(camera_info(fx=0.0))
    with pytest.raises(msgs.MessageError, match='640x480'):
        msgs.check_info_matches(camera_info(), 320, 240)


def test_disparity_image_fields_and_invalid_marking():
    d = np.full((6, 8), np.nan, np.float32)
    d[2:5, 1:7] = 10.0
    d[3, 3] = np.inf
    msg = msgs.disparity_image(d, Header(frame_id='l'), f=500.0, t=0.1, min_disparity=0.0, max_disparity=192.0)
    assert msg.image.encoding == '32FC1' and msg.f == 500.0 and msg.t == pytest.approx(0.1)
    vw = msg.valid_window
    assert (vw.x_offset, vw.y_offset, vw.width, vw.height) == (1, 2, 6, 3)
    np.testing.assert_array_equal(msgs.image_to_array(msg.image), d)  # invalid stays NaN by default
    marked = msgs.disparity_image(d, Header(), 500.0, 0.1, 4.0, 192.0, invalid=3.0)
    values = msgs.image_to_array(marked.image)
    np.testing.assert_array_equal(values, np.where(np.isfinite(d), d, 3.0))  # NaN and inf -> invalid
    assert marked.valid_window == msg.valid_window and np.isnan(d[0, 0])  # the input is not modified
