"""Size mapping of the estimators, checked exactly with hand-built ONNX graphs whose outputs are
known formulas (test/toy_models.py), run by real ONNX Runtime sessions."""
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from depth_ros.inference import DepthEstimator, StereoEstimator, loading
from toy_models import write_mono_toy, write_stereo_toy

RNG = np.random.default_rng(0)


def pair(h: int, w: int, left_red: np.ndarray | int, right_red: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random RGB pair whose red channels are set (the toy graphs only read red)."""
    left = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    right = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    left[..., 0] = left_red
    right[..., 0] = right_red
    return left, right


def test_padding_is_cropped_exactly_for_every_stage(tmp_path):
    # 37x53 is no multiple of 16: the toy graph refuses unpadded input; x + 1 checks the crop
    card = write_stereo_toy(tmp_path, ramp=1.0, max_disparity=1000)
    est = StereoEstimator(card)
    left, right = pair(37, 53, RNG.integers(0, 256, (37, 53)))
    column = np.arange(53, dtype=np.float32)[None, :] + 1
    for k in (2, 1, 2):
        est.stages = k
        out = est(left, right)
        assert out.shape == (37, 53) and out.dtype == np.float32
        np.testing.assert_allclose(out, k * left[..., 0].astype(np.float32) + column, rtol=0, atol=1e-3)


@pytest.mark.parametrize('scale', [0.5, 0.3, 1.5])
def test_input_scale_divides_disparity_by_the_horizontal_scale(tmp_path, scale):
    est = StereoEstimator(write_stereo_toy(tmp_path, max_disparity=1000), input_scale=scale, stages=2)
    left, right = pair(40, 60, 100)
    net_w = int(60 * scale + 0.5)
    out = est(left, right)
    assert out.shape == (40, 60)
    np.testing.assert_allclose(out, 200 * 60 / net_w, rtol=1e-5)  # 2 stages * 100 px at network size
    assert est.max_disparity == pytest.approx(1000 * 60 / net_w)
    assert est.delta_d == pytest.approx(60 / net_w / 16)


def test_resizing_keeps_pixel_centres_aligned(tmp_path):
    # a column ramp computed at half resolution, mapped back: d(x) = ((x + 0.5) s - 0.5 + 1) / s
    est = StereoEstimator(write_stereo_toy(tmp_path, gain=0.0, ramp=1.0, max_disparity=1000), input_scale=0.5)
    left, right = pair(32, 64, 0)
    out = est(left, right)
    x = np.arange(64)
    expected = ((x + 0.5) * 0.5 + 0.5) / 0.5
    np.testing.assert_allclose(out[:, 1:-1], np.broadcast_to(expected[1:-1], (32, 62)), atol=1e-4)


def test_fixed_size_graph_gets_images_resized_to_its_size(tmp_path, caplog):
    card = write_stereo_toy(tmp_path, dynamic=False, size=(32, 64), stages=(1,), max_disparity=1000)
    with caplog.at_level(logging.WARNING, 'depth_ros'):
        est = StereoEstimator(card, input_scale=0.5)
    assert 'input_scale 0.5 is ignored' in caplog.text
    left, right = pair(50, 70, 40)
    np.testing.assert_allclose(est(left, right), 40 * 70 / 64, rtol=1e-5)
    left, right = pair(32, 64, RNG.integers(1, 256, (32, 64)))  # the graph's own size: no resizing
    np.testing.assert_allclose(est(left, right), left[..., 0].astype(np.float32), rtol=1e-6)


def test_invalid_disparities_become_nan(tmp_path):
    # d = left_red - 10: <= 0 for red <= 10, beyond the card's 50.5 px for red > 60
    est = StereoEstimator(write_stereo_toy(tmp_path, stages=(1,), max_disparity=50.5))
    red = np.tile(np.arange(256, dtype=np.uint8), (16, 1))
    out = est(*pair(16, 256, red, 10))
    valid = (red > 10) & (red <= 60)
    assert np.isnan(out[~valid]).all()
    np.testing.assert_allclose(out[valid], red[valid] - 10.0, rtol=1e-6)
    assert (est.min_disparity, est.max_disparity) == (0.0, 50.5)


def test_grey_images_are_replicated_to_three_channels(tmp_path):
    est = StereoEstimator(write_stereo_toy(tmp_path, stages=(1,), max_disparity=1000))
    left = RNG.integers(1, 256, (16, 32), dtype=np.uint8)
    np.testing.assert_allclose(est(left, np.zeros_like(left)), left.astype(np.float32), rtol=1e-6)


def test_stage_graphs_load_once_and_switch_cheaply(tmp_path, monkeypatch):
    made = []
    real = loading.OrtRunner
    monkeypatch.setattr(loading, 'OrtRunner', lambda path, *a: made.append(path.name) or real(path, *a))
    est = StereoEstimator(write_stereo_toy(tmp_path, stages=(1, 2, 3), max_disparity=1000), stages=1)
    assert made == ['toy_stereo.s1.onnx']  # the first graph at construction, the others lazily
    left, right = pair(16, 16, 7)
    outputs = {}
    for k in (1, 2, 3, 1, 3, 2):
        est.stages = k
        outputs[k] = est(left, right)
    assert sorted(made) == ['toy_stereo.s1.onnx', 'toy_stereo.s2.onnx', 'toy_stereo.s3.onnx']
    for k in (1, 2, 3):
        np.testing.assert_allclose(outputs[k], 7.0 * k)


def test_mono_resizes_to_network_and_back(tmp_path):
    est = DepthEstimator(write_mono_toy(tmp_path))
    assert est.input_size == (24, 32)
    image = np.full((48, 64, 3), 51, np.uint8)  # red 51/255 = 0.2 -> 1 + 9 * 0.2 = 2.8 m
    depth = est(image)
    assert depth.shape == (48, 64)
    np.testing.assert_allclose(depth, 2.8, rtol=1e-6)
    assert est(image, out_size=(20, 10)).shape == (10, 20)  # out_size is (w, h)
    assert est.last_focal_scale is None and not est.focal_scaling


@pytest.mark.parametrize('output_scale', [1.0, 0.5])
def test_mono_pads_dynamic_graphs_and_crops_scaled_output(tmp_path, output_scale):
    # 20x28 is no multiple of 8: padded to 24x32, the (half-resolution) output cropped back
    est = DepthEstimator(write_mono_toy(tmp_path, output_scale=output_scale), input_size=(20, 28))
    image = np.zeros((40, 56, 3), np.uint8)
    image[:, :28, 0] = 255  # left half 10 m, right half 1 m
    depth = est(image)
    assert depth.shape == (40, 56)
    np.testing.assert_allclose(depth[:, :24], 10.0, rtol=1e-6)
    np.testing.assert_allclose(depth[:, 32:], 1.0, rtol=1e-6)


def test_mono_focal_scaling(tmp_path):
    est = DepthEstimator(write_mono_toy(tmp_path, f_canonical=100.0))
    assert est.focal_scaling
    image = np.full((48, 64), 51, np.uint8)  # 2.8 m canonical
    # fx = 200 px at width 64 is 100 px at the network's width 32: the canonical camera
    np.testing.assert_allclose(est(image, fx=200.0), 2.8, rtol=1e-6)
    assert est.last_focal_scale == pytest.approx(1.0)
    np.testing.assert_allclose(est(image, fx=400.0), 5.6, rtol=1e-6)
    np.testing.assert_allclose(est(image, fx=400.0, out_size=(32, 24)), 5.6, rtol=1e-6)  # out_size keeps fx's meaning
    np.testing.assert_allclose(est(image), 2.8, rtol=1e-6)
    assert est.last_focal_scale is None


def test_mono_keeps_the_image_aspect_on_dynamic_graphs(tmp_path):
    # card 24x32 (768 px); a 16:9 image runs at ~768 px in 16:9, padded to multiples of 8
    est = DepthEstimator(write_mono_toy(tmp_path, f_canonical=100.0))
    assert est.network_size((720, 1280)) == (21, 37) and est.network_size((480, 640)) == (24, 32)
    sm = est.size_map((720, 1280))
    assert sm.scale_x == pytest.approx(sm.net_size[0] / 720, rel=0.02)  # square pixels: one focal length
    image = np.full((720, 1280, 3), 51, np.uint8)
    fx = 100.0 * 1280 / 37  # the canonical focal length at the network's width
    np.testing.assert_allclose(est(image, fx=fx), 2.8, rtol=1e-5)
    # an explicit input size is taken as it is
    assert DepthEstimator(write_mono_toy(tmp_path / 'b'), input_size=(24, 32)).network_size((720, 1280)) == (24, 32)


def test_mono_invalid_depth_becomes_nan(tmp_path):
    est = DepthEstimator(write_mono_toy(tmp_path, offset=-1.0, gain=9.0, multiple_of=1))
    image = np.zeros((24, 32, 3), np.uint8)
    image[:, 16:, 0] = 255  # 8 m; left half -1 m
    depth = est(image)
    assert np.isnan(depth[:, :16]).all()
    np.testing.assert_allclose(depth[:, 16:], 8.0)


def test_runtime_does_not_import_torch(tmp_path):
    code = ('import sys, numpy as np\n'
            f'sys.path.insert(0, {str(Path(__file__).parent)!r})\n'
            'from depth_ros.inference import DepthEstimator, StereoEstimator\n'
            'from toy_models import write_mono_toy, write_stereo_toy\n'
            f'd = {str(tmp_path)!r}\n'
            'img = np.full((24, 160, 3), 9, np.uint8)\n'
            'StereoEstimator(write_stereo_toy(d))(img, img); StereoEstimator("opencv_sgbm")(img, img)\n'
            'DepthEstimator(write_mono_toy(d))(img)\n'
            'assert "torch" not in sys.modules, "torch was imported"\n')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


def test_tensor_maker_stacks_and_normalizes_in_one_buffer():
    """(x / 255 - mean) * inv_std per channel, images stacked, buffer reused; bgr reverses both
    the channels and the constants; grey images are replicated."""
    from depth_ros.inference.images import TensorMaker

    rng = np.random.default_rng(0)
    left, right = rng.integers(0, 256, (2, 4, 5, 3), np.uint8)
    norm = {'mean': [0.485, 0.456, 0.406], 'inv_std': [4.37, 4.46, 4.44]}
    mean, inv_std = np.array(norm['mean'])[:, None, None], np.array(norm['inv_std'])[:, None, None]
    tm = TensorMaker('rgb', (0, 1), norm)
    pair = tm(left, right, slot='pair')
    assert pair.shape == (2, 3, 4, 5) and pair.dtype == np.float32
    for i, img in enumerate((left, right)):
        np.testing.assert_allclose(pair[i], (img.transpose(2, 0, 1) / 255 - mean) * inv_std, atol=1e-5)
    assert tm(right, left, slot='pair') is pair  # reused
    bgr = TensorMaker('bgr', (0, 1), norm)(left)
    np.testing.assert_allclose(bgr[0], (left[:, :, ::-1].transpose(2, 0, 1) / 255 - mean[::-1]) * inv_std[::-1],
                               atol=1e-5)
    plain = TensorMaker('rgb', (-1, 1))(left[:, :, 0])
    np.testing.assert_allclose(plain[0], np.repeat(left[None, :, :, 0] / 127.5 - 1, 3, 0), atol=1e-6)
