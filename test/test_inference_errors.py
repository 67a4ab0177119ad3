"""Bad inputs, bad weights, bad parameters and providers: clear errors (or warned fallbacks)."""
import json
import logging

import numpy as np
import pytest

from depth_ros.inference import DepthEstimator, EstimatorError, StereoEstimator, available_providers
from toy_models import write_mono_toy, write_stereo_toy
from depth_ros.model_card import ModelCardError


@pytest.fixture
def stereo_card(tmp_path):
    return write_stereo_toy(tmp_path, stages=(1, 2), max_disparity=1000)


@pytest.fixture(params=['toy', 'opencv_sgbm', 'opencv_bm'])
def stereo(request, stereo_card):
    return StereoEstimator(stereo_card if request.param == 'toy' else request.param)


IMG = np.zeros((32, 48, 3), np.uint8)


@pytest.mark.parametrize('bad, received', [
    (np.zeros((32, 48, 4), np.uint8), '4 channels'),
    (np.zeros((32, 48, 2), np.uint8), '2 channels'),
    (np.zeros((2, 32, 48, 3), np.uint8), '4 dimensions'),
    (np.zeros((32, 48, 3), np.float32), 'dtype float32'),
    (np.zeros((32, 48), np.uint16), 'dtype uint16'),
    ([[0, 1]], 'list'),
])
def test_bad_images_name_what_was_received_and_accepted(stereo, bad, received):
    for args in ((bad, IMG), (IMG, bad)):
        with pytest.raises(EstimatorError, match=received) as info:
            stereo(*args)
        assert 'uint8 RGB images (H, W, 3) or grey images (H, W)' in str(info.value)


def test_mismatched_pair_names_both_sizes(stereo):
    with pytest.raises(EstimatorError, match='left image is 48x32 .* right image is 50x32'):
        stereo(IMG, np.zeros((32, 50, 3), np.uint8))
    with pytest.raises(EstimatorError, match='3 channels.*1 channel'):
        stereo(IMG, np.zeros((32, 48), np.uint8))


def test_mono_rejects_bad_images_and_arguments(tmp_path):
    est = DepthEstimator(write_mono_toy(tmp_path, f_canonical=100.0))
    with pytest.raises(EstimatorError, match='4 channels'):
        est(np.zeros((24, 32, 4), np.uint8))
    for fx in (0.0, -5.0, float('nan'), float('inf'), 'x'):
        with pytest.raises(EstimatorError, match='fx must be a positive focal length'):
            est(IMG, fx=fx)
    for size in ((0, 10), (10,), (10.5, 3), 'ab'):
        with pytest.raises(EstimatorError, match='out_size'):
            est(IMG, out_size=size)


def test_missing_card_and_missing_graph(tmp_path, stereo_card):
    with pytest.raises(ModelCardError, match='nope.json does not exist'):
        StereoEstimator(tmp_path / 'nope.json')
    (tmp_path / 'toy_stereo.s2.onnx').unlink()  # every graph is checked at construction
    with pytest.raises(ModelCardError, match=r'toy_stereo\.s2\.onnx named by model card .* does not exist'):
        StereoEstimator(stereo_card)


def test_flipped_byte_fails_the_sha256_check(tmp_path, stereo_card):
    graph = tmp_path / 'toy_stereo.s1.onnx'
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelCardError, match=r'toy_stereo\.s1\.onnx is corrupt or was replaced: sha256'):
        StereoEstimator(stereo_card)
    with pytest.raises(ModelCardError, match='sha256'):
        StereoEstimator(graph)  # an .onnx path finds the card beside it


def test_truncated_graph_without_checksum_reports_path_and_cause(tmp_path):
    card_path = write_mono_toy(tmp_path)
    card = json.loads(card_path.read_text())
    card['graphs'][0]['sha256'] = ''
    card_path.write_text(json.dumps(card))
    graph = tmp_path / 'toy_mono.onnx'
    graph.write_bytes(graph.read_bytes()[:40])
    with pytest.raises(ModelCardError, match=r'ONNX Runtime cannot load .*toy_mono\.onnx: .*\S') as info:
        DepthEstimator(card_path)
    assert info.value.__cause__ is not None


def test_unknown_name_lists_shipped_models_and_builtins(tmp_path, monkeypatch):
    write_stereo_toy(tmp_path)
    monkeypatch.setenv('DEPTH_ROS_MODELS', str(tmp_path))
    with pytest.raises(ModelCardError, match="no model named 'no_such_model'; shipped models: .*toy_stereo.*"
                                             'built-in methods: opencv_sgbm, opencv_bm'):
        StereoEstimator('no_such_model')
    with pytest.raises(ModelCardError, match='shipped models: .*toy_stereo'):
        DepthEstimator('no_such_model')
    assert StereoEstimator('toy_stereo').name == 'toy_stereo'  # shipped names resolve


def test_wrong_kind_backend_and_arguments(tmp_path, stereo_card):
    mono_card = write_mono_toy(tmp_path)
    with pytest.raises(EstimatorError, match="'toy_mono' is a mono model; use DepthEstimator"):
        StereoEstimator(mono_card)
    with pytest.raises(EstimatorError, match="'toy_stereo' is a stereo model; use StereoEstimator"):
        DepthEstimator(stereo_card)
    with pytest.raises(EstimatorError, match='stereo method'):
        DepthEstimator('opencv_sgbm')
    with pytest.raises(EstimatorError, match="unknown backend 'tensorflow'"):
        StereoEstimator(stereo_card, backend='tensorflow')
    with pytest.raises(EstimatorError, match="backend 'torch' needs a checkpoint"):
        StereoEstimator(stereo_card, backend='torch')
    with pytest.raises(EstimatorError, match='opencv backend'):
        StereoEstimator('opencv_bm', backend='onnxruntime')
    with pytest.raises(EstimatorError, match='runs 1, 2 stage'):
        StereoEstimator(stereo_card, stages=3)
    for scale in (0, -1, 5, 'half'):
        with pytest.raises(EstimatorError, match='input_scale'):
            StereoEstimator('opencv_sgbm', input_scale=scale)
    with pytest.raises(EstimatorError, match='threads'):
        StereoEstimator(stereo_card, threads=-1)
    with pytest.raises(EstimatorError, match='fixed input size 24x32'):
        DepthEstimator(write_mono_toy(tmp_path / 'f', dynamic=False), input_size=(48, 64))
    est = StereoEstimator(stereo_card)
    with pytest.raises(EstimatorError, match='runs 1, 2 stage'):
        est.stages = 0
    assert est.stages == 2


def test_untrained_weights_warn(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, 'depth_ros'):
        StereoEstimator(write_stereo_toy(tmp_path / 'a', trained=True))
        assert 'untrained' not in caplog.text
        est = StereoEstimator(write_stereo_toy(tmp_path / 'b', trained=False))
    assert not est.trained
    assert "model 'toy_stereo' has untrained weights" in caplog.text


@pytest.mark.parametrize('providers', ['cuda', 'tensorrt', ['CUDAExecutionProvider', 'cpu'], 'cuda,cpu'])
def test_unavailable_provider_falls_back_to_cpu(stereo_card, caplog, providers):
    if 'CUDAExecutionProvider' in available_providers():
        pytest.skip('this machine has CUDA')
    with caplog.at_level(logging.WARNING, 'depth_ros'):
        est = StereoEstimator(stereo_card, providers=providers)
    assert est.providers == ['CPUExecutionProvider']
    assert 'not available here' in caplog.text
    left = np.full((16, 16, 3), 9, np.uint8)
    np.testing.assert_allclose(est(left, np.zeros_like(left)), 18.0, rtol=1e-6)


def test_tensorrt_caches_its_engines_and_sessions_take_provider_options(tmp_path, monkeypatch, stereo_card):
    """TensorRT's session options point its engine and timing caches at TRT_CACHE (created); other
    providers keep ONNX Runtime's defaults, and sessions made with these options run (CPU here)."""
    from depth_ros.inference import runners
    monkeypatch.setattr(runners, 'TRT_CACHE', tmp_path / 'trt')
    names = ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
    options = dict(runners.provider_options(names))
    trt = options['TensorrtExecutionProvider']
    assert trt['trt_engine_cache_enable'] == 'True' and trt['trt_engine_cache_path'] == str(tmp_path / 'trt')
    assert trt['trt_timing_cache_path'] == str(tmp_path / 'trt') and (tmp_path / 'trt').is_dir()
    assert options['CUDAExecutionProvider'] == {} and options['CPUExecutionProvider'] == {}
    left = np.full((16, 16, 3), 9, np.uint8)
    est = StereoEstimator(stereo_card, providers='cpu')
    np.testing.assert_allclose(est(left, np.zeros_like(left)), 18.0, rtol=1e-6)


def test_unknown_provider_is_an_error(stereo_card):
    assert 'CPUExecutionProvider' in available_providers()
    with pytest.raises(EstimatorError, match="unknown execution provider 'gpu'; accepted: cpu, cuda, tensorrt"):
        StereoEstimator(stereo_card, providers='gpu')


def test_sgbm_parameters_are_validated(stereo_card):
    est = StereoEstimator('opencv_sgbm')
    bad = [({'disparity_range': 100}, 'multiple of 16'), ({'disparity_range': 0}, 'out of range'),
           ({'correlation_window_size': 4}, 'must be odd'), ({'uniqueness_ratio': 101}, r'out of range \[0, 100\]'),
           ({'speckle_size': 2.5}, 'must be an integer'), ({'min_disparity': 'a'}, 'must be a number'),
           ({'P1': 500, 'P2': 400}, 'P2 .* must be larger than P1'), ({'sgbm_mode': 'fast'}, 'sgbm_mode must be'),
           ({'full_dp': True, 'sgbm_mode': 'sgbm'}, 'contradicts'), ({'window': 5}, 'unknown stereo parameter')]
    before = est.sgbm_params
    for params, message in bad:
        with pytest.raises(EstimatorError, match=message):
            est.set_sgbm(**params)
        with pytest.raises(EstimatorError, match=message):
            StereoEstimator('opencv_sgbm', sgbm=params)
    assert est.sgbm_params == before  # a rejected change changes nothing
    est.set_sgbm(full_dp=True, disparity_range=64, P1=100, P2=900)
    assert est.sgbm_params['sgbm_mode'] == 'hh' and est.max_disparity == 63.0
    with pytest.raises(EstimatorError, match='too small for StereoBM'):
        StereoEstimator('opencv_bm', sgbm={'correlation_window_size': 3})
    with pytest.raises(EstimatorError, match='set_sgbm applies to opencv_sgbm and opencv_bm'):
        StereoEstimator(stereo_card).set_sgbm(disparity_range=64)
    with pytest.raises(EstimatorError, match='sgbm parameters apply to'):
        StereoEstimator(stereo_card, sgbm={'disparity_range': 64})


def test_images_too_small_for_opencv_are_refused_not_crashed():
    # OpenCV 5.0's SGBM fails or segfaults on images narrower than its search needs
    sgbm = StereoEstimator('opencv_sgbm', sgbm={'min_disparity': -8, 'disparity_range': 64})  # window 5
    with pytest.raises(EstimatorError, match='needs 77 px'):
        sgbm(np.zeros((20, 76, 3), np.uint8), np.zeros((20, 76, 3), np.uint8))
    assert sgbm(np.zeros((20, 77, 3), np.uint8), np.zeros((20, 77, 3), np.uint8)).shape == (20, 77)
    half = StereoEstimator('opencv_sgbm', input_scale=0.5)  # 128 disparities at half of 240 px
    with pytest.raises(EstimatorError, match='120 px wide .* raise input_scale'):
        half(np.zeros((40, 240), np.uint8), np.zeros((40, 240), np.uint8))
    bm = StereoEstimator('opencv_bm')  # window 15
    with pytest.raises(EstimatorError, match='too small for the StereoBM window 15'):
        bm(np.zeros((15, 200), np.uint8), np.zeros((15, 200), np.uint8))
    assert bm(np.zeros((16, 40), np.uint8), np.zeros((16, 40), np.uint8)).shape == (16, 40)
