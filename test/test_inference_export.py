"""End to end: networks exported by depth_ros.nets.export run through the estimators (ONNX Runtime
and the torch backend) and give the torch model's output."""
import logging

import cv2
import numpy as np
import pytest
import torch

from depth_ros.inference import DepthEstimator, EstimatorError, StereoEstimator
from depth_ros.nets import create_model, list_models
from depth_ros.nets.checkpoint import save_checkpoint
from depth_ros.nets.export import export_model

ANYNET = {'spn_channels': 2, 'max_disparity': 64}
RNG = np.random.default_rng(1)


def textured(h: int, w: int) -> np.ndarray:
    """Smooth random RGB texture (uint8)."""
    return cv2.GaussianBlur(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)


def to_torch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]


@pytest.fixture(scope='module')
def anynet(tmp_path_factory):
    """(torch model, card path, checkpoint path) of one untrained AnyNet with SPN."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp('anynet')
    model = create_model('anynet', **ANYNET).eval()
    card = export_model('anynet', directory, name='tiny_anynet', options=ANYNET, state_dict=model.state_dict(),
                        input_size=(64, 128), card={'trained': False})
    ckpt = save_checkpoint(directory / 'tiny_anynet.pt', model, 'anynet', ANYNET, card={'trained': False})
    return model, card, ckpt


@pytest.fixture(scope='module')
def pair():
    """A 50x100 pair (no multiple of 16: padded to 64x112), right = left shifted by 6 px."""
    wide = textured(50, 106)
    return wide[:, 6:].copy(), wide[:, :100].copy()


def torch_disparity(model, left: np.ndarray, right: np.ndarray, stages: int) -> np.ndarray:
    """The torch model on the edge-padded pair, cropped: what the estimator must return."""
    h, w = left.shape[:2]
    pad = [cv2.copyMakeBorder(x, 0, -h % 16, 0, -w % 16, cv2.BORDER_REPLICATE) for x in (left, right)]
    model.stages = stages
    with torch.no_grad():
        return model(*map(to_torch, pad))[0, 0, :h, :w].numpy()


def check_same(out: np.ndarray, ref: np.ndarray, max_disparity: float) -> None:
    """Equal where valid, NaN exactly where the reference is outside (0, max_disparity]
    (pixels within 1e-3 of a bound may go either way)."""
    valid = (ref > 0) & (ref <= max_disparity)
    borderline = (np.abs(ref) < 1e-3) | (np.abs(ref - max_disparity) < 1e-3)
    assert valid.mean() > 0.5
    np.testing.assert_array_equal(np.isnan(out)[~borderline], ~valid[~borderline])
    both = valid & ~np.isnan(out)
    np.testing.assert_allclose(out[both], ref[both], rtol=0, atol=5e-4)  # ORT vs torch float rounding


def test_stereo_estimator_matches_torch_for_every_stage(anynet, pair, caplog):
    model, card, _ = anynet
    with caplog.at_level(logging.WARNING, 'depth_ros'):
        est = StereoEstimator(card, stages=1)
    assert 'untrained' in caplog.text and not est.trained
    assert est.available_stages == [1, 2, 3, 4] and est.backend == 'onnxruntime'
    for k in (1, 4, 2, 3, 1):  # switching at run time
        est.stages = k
        out = est(*pair)
        assert out.shape == (50, 100)
        check_same(out, torch_disparity(model, *pair, k), 64)
    assert est.max_disparity == 64 and est.min_disparity == 0


def test_torch_backend_runs_checkpoints_like_onnx_runtime(anynet, pair):
    model, card, ckpt = anynet
    ort_est, torch_est = StereoEstimator(card), StereoEstimator(ckpt)
    assert torch_est.backend == 'torch' and torch_est.providers == ['torch:cpu']
    assert torch_est.available_stages == [1, 2, 3, 4] and torch_est.max_disparity == 64
    for k in (4, 2):
        ort_est.stages = torch_est.stages = k
        a, b = ort_est(*pair), torch_est(*pair)
        check_same(b, torch_disparity(model, *pair, k), 64)
        both = ~np.isnan(a) & ~np.isnan(b)
        assert both.mean() > 0.5
        np.testing.assert_allclose(a[both], b[both], atol=5e-4)  # ORT vs torch float rounding


@pytest.mark.parametrize('backend', ['onnxruntime', 'torch'])
def test_spn_limit_clips_the_spn_to_stage_3(anynet, pair, backend):
    """spn_limit: stage 4 = torch's stage 4 clipped to its stage 3 +- the limit, on both backends
    (ONNX Runtime's step graphs reuse stage 3's output, the torch checkpoint runs stage 3 again)."""
    model, card, ckpt = anynet
    limit = 0.05
    est = StereoEstimator(card if backend == 'onnxruntime' else ckpt, spn_limit=limit)
    assert est.backend == backend and est.spn_limit == limit
    s3, s4 = (torch_disparity(model, *pair, k) for k in (3, 4))
    assert np.abs(s4 - s3).max() > 4 * limit  # the SPN moves some pixels by more than the limit
    check_same(est(*pair), np.clip(s4, s3 - limit, s3 + limit), 64)
    est.stages = 3  # the limit concerns the SPN stage only
    check_same(est(*pair), s3, 64)
    assert StereoEstimator(card).spn_limit == 0.0  # this card sets none: the SPN is free
    with pytest.raises(EstimatorError, match='spn_limit must be'):
        StereoEstimator(card, spn_limit=-1)


MONO = [m for m in ('yolo_unet', 'autoencoder', 'fastdepth') if m in list_models(kind='mono')]


@pytest.mark.skipif(not MONO, reason='no monocular network is registered yet')
def test_depth_estimator_matches_torch_and_scales_with_focal_length(tmp_path):
    torch.manual_seed(0)
    arch = MONO[0]
    model = create_model(arch).eval()
    card = export_model(arch, tmp_path, state_dict=model.state_dict(), input_size=(64, 64),
                        card={'trained': False, 'f_canonical': 50.0})
    est = DepthEstimator(card)
    assert est.input_size == (64, 64) and est.f_canonical == 50.0
    image = textured(64, 64)
    with torch.no_grad():
        ref = model(to_torch(image))[0, 0].numpy()
    native = (ref.shape[1], ref.shape[0])  # the network's own output size: no resampling
    np.testing.assert_allclose(est(image, out_size=native), ref, rtol=1e-4, atol=1e-5)
    # fx = 100 px at this width is 100 px at the network's: depth = out * 100 / 50
    np.testing.assert_allclose(est(image, fx=100.0, out_size=native), 2 * ref, rtol=1e-4, atol=1e-5)
    d1, d2 = est(image, fx=100.0), est(image, fx=200.0)
    assert d1.shape == (64, 64) and np.isfinite(d1).all()
    np.testing.assert_allclose(d2, 2 * d1, rtol=1e-6)
    # a 128-px-wide image: f_net = fx * 64 / 128, so fx = 100 px is the canonical camera
    wide = cv2.resize(image, (128, 128))
    assert est.size_map(wide.shape[:2]).scale_x == 0.5
    np.testing.assert_allclose(est(wide, fx=100.0), est(wide), rtol=1e-6)
    np.testing.assert_allclose(est(wide, fx=300.0), 3 * est(wide), rtol=1e-6)
