"""Torch weights recovered from ONNX graphs (depth_ros.nets.from_onnx): the shipped archives compute
what the shipped graphs compute (torch vs ONNX Runtime on a rendered scene), a fresh export's
archive and its graph-recovered state agree, and model.init accepts a shipped model's name."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from depth_ros.inference import StereoEstimator  # noqa: E402
from depth_ros.model_card import find_card, load_card, shipped_cards  # noqa: E402
from depth_ros.synthetic import StereoCamera, random_scene, render_stereo  # noqa: E402

from depth_ros.nets import create_model  # noqa: E402
from depth_ros.nets.checkpoint import init_state  # noqa: E402
from depth_ros.nets.export import export_model, onnx_parity  # noqa: E402
from depth_ros.nets.from_onnx import _randomize, load_card_weights, read_weights, state_dict_from_onnx  # noqa: E402

H, W = 160, 320
CARDS = [c.name for c in shipped_cards() if c.torch_weights]


@pytest.fixture(scope='module')
def scene() -> dict:
    cam = StereoCamera(width=W, height=H, fx=160.0, fy=160.0, cx=(W - 1) / 2, cy=(H - 1) / 2, baseline=0.1)
    return render_stereo(random_scene(seed=11), cam)


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def test_every_shipped_model_has_torch_weights():
    assert {'anynet_spn8', 'anynet', 'fastdepth', 'mbv2_fbnet', 'mbv2_fbnet_kd'} <= set(CARDS)


@pytest.mark.parametrize('name', CARDS)
def test_shipped_weights_compute_the_shipped_graphs(name, scene):
    """Max |torch - ONNX Runtime| below 1e-3 px (stereo, every stage: the graph rewrites keep the
    network's outputs) or 2e-3 m (mono); measured ~5e-5."""
    card = load_card(find_card(name))
    model = load_card_weights(card)
    if card.kind == 'mono':
        assert onnx_parity(model, find_card(name), _tensor(scene['left'])[:, :, :96, :128]) < 2e-3
        return
    net = StereoEstimator(name, spn_limit=0.0)  # the graphs alone (the card's SPN limit is applied after them)
    left, right = _tensor(scene['left']), _tensor(scene['right'])
    for k in net.available_stages:
        net.stages = model.stages = k
        with torch.no_grad():
            ref = model(left, right)[0, 0].numpy()
        out = net(scene['left'], scene['right'])
        ok = np.isfinite(out)
        assert ok.mean() > 0.95 and np.abs(out[ok] - ref[ok]).max() < 1e-3, k


def test_recovered_state_equals_the_exported_archive(tmp_path):
    """A fresh export with random BatchNorm statistics: the state recovered from its graph computes
    the same function as the archive the exporter wrote beside it."""
    options = {'max_disparity': 48, 'spn_channels': 4}
    model = create_model('anynet', **options).eval()
    _randomize(model, seed=3)
    card = load_card(export_model('anynet', tmp_path, name='net', options=options, state_dict=model.state_dict(),
                                  input_size=(64, 128)))
    assert card.torch_weights['file'] == 'net.weights.npz'
    state, missing = state_dict_from_onnx(card.graph_path(), 'anynet', options, input_size=(64, 128))
    assert not missing
    written = create_model('anynet', **options).eval()
    written.load_state_dict(read_weights(tmp_path / 'net.weights.npz'))
    recovered = create_model('anynet', **options).eval()
    recovered.load_state_dict(state)
    x = (torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128))
    with torch.no_grad():
        assert torch.allclose(written(*x), recovered(*x), atol=1e-3)
    assert onnx_parity(recovered, tmp_path / 'net.json', *x) < 1e-3


def test_init_state_takes_a_shipped_name():
    arch, state = init_state('anynet_spn8')
    assert arch == 'anynet'
    create_model('anynet', **load_card(find_card('anynet_spn8')).options).load_state_dict(state)
