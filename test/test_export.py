"""ONNX export: AnyNet stage graphs against torch in ONNX Runtime, model cards, checkpoints, fp16."""
from pathlib import Path

import onnx
import pytest
import torch
import torch.nn as nn

from depth_ros.model_card import load_card, sha256_of
from depth_ros.nets import _registry, create_model
from depth_ros.nets.checkpoint import load_checkpoint, save_checkpoint
from depth_ros.nets.export import export_model, onnx_parity
from depth_ros.training.cli.export import main

SIZE = (64, 128)
# max_disparity 64 keeps the disparities (and so float32's rounding, ~8 ulp) small enough for
# an absolute 1e-4 px bound; at the default 192 px outputs reach ~180 px and differ by ~1.5e-4.
OPTIONS = {0: {'spn_channels': 0, 'max_disparity': 64}, 8: {'spn_channels': 8, 'max_disparity': 64}}
CARD = {'training': {'dataset': 'synthetic', 'epochs': 0}, 'metrics': {'epe_px': 1.5}}


def _randomized(spn: int) -> nn.Module:
    """AnyNet with random weights and non-trivial BatchNorm statistics (as after training)."""
    torch.manual_seed(spn)
    model = create_model('anynet', **OPTIONS[spn])
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    return model.eval()


@pytest.fixture(scope='module')
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[nn.Module, Path]]:
    out = tmp_path_factory.mktemp('models')
    result = {}
    for spn in OPTIONS:
        model = _randomized(spn)
        card = export_model('anynet', out, name=f'anynet_spn{spn}', options=OPTIONS[spn],
                            state_dict=model.state_dict(), input_size=SIZE, card=CARD)
        result[spn] = (model, card)
    return result


def _pair(h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=gen), torch.rand(1, 3, h, w, generator=gen)


@pytest.mark.parametrize('spn', sorted(OPTIONS))
@pytest.mark.parametrize('size', [SIZE, (96, 160), (128, 48)])
def test_every_stage_graph_matches_torch(exported, spn: int, size: tuple[int, int]) -> None:
    model, card_path = exported[spn]
    left, right = _pair(*size, seed=size[1])
    stages = load_card(card_path).stages
    assert stages == ([1, 2, 3, 4] if spn else [1, 2, 3])
    for k in stages:
        assert onnx_parity(model, card_path, left, right, stages=k) <= 1e-4, f'stage {k}'
    assert model.stages == model.max_stages  # parity leaves the model as it found it


def test_card_fields_and_checksums(exported) -> None:
    _, card_path = exported[8]
    card = load_card(card_path)
    assert (card.name, card.arch, card.kind, card.options) == ('anynet_spn8', 'anynet', 'stereo', OPTIONS[8])
    assert card.input == {'layout': 'NCHW', 'color': 'rgb', 'range': [0, 1], 'size': list(SIZE),
                          'dynamic': True, 'multiple_of': 16}
    assert card.output == {'quantity': 'disparity', 'unit': 'px', 'scale': 1.0, 'precision': 'fp32',
                           'max_disparity': float(OPTIONS[8]['max_disparity'])}
    assert card.trained is True and card.training == CARD['training'] and card.metrics == CARD['metrics']
    assert card.f_canonical is None
    for g in card.graphs:
        assert g.file == f'anynet_spn8.s{g.stages}.onnx'
        assert g.sha256 == sha256_of(card.directory / g.file) and len(g.sha256) == 64


def test_graphs_have_named_dynamic_io_and_a_loop_only_for_the_spn(exported) -> None:
    card = load_card(exported[8][1])
    for k in card.stages:
        graph = onnx.load(str(card.graph_path(k))).graph
        assert [i.name for i in graph.input] == ['left', 'right'] and [o.name for o in graph.output] == ['disparity']
        dims = graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_value == 1 and dims[2].dim_param and dims[3].dim_param
        assert any(n.op_type == 'Loop' for n in graph.node) == (k == 4)


def test_untrained_export_says_trained_false(tmp_path: Path) -> None:
    card = load_card(export_model('anynet', tmp_path, options=OPTIONS[0], input_size=(32, 64)))
    assert card.name == 'anynet' and card.trained is False and card.metrics == {}
    weights = _randomized(0).state_dict()
    card = load_card(export_model('anynet', tmp_path, name='smoke', options=OPTIONS[0], input_size=(32, 64),
                                  state_dict=weights, card={'trained': False}))
    assert card.trained is False


def test_export_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='multiple of 16'):
        export_model('anynet', tmp_path, options=OPTIONS[0], input_size=(40, 64))
    with pytest.raises(ValueError, match='unknown card keys'):
        export_model('anynet', tmp_path, options=OPTIONS[0], input_size=(32, 64), card={'epe': 1.0})


def test_checkpoint_round_trip_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = _randomized(8)
    ckpt = save_checkpoint(tmp_path / 'ckpt.pt', model, 'anynet', OPTIONS[8], card=CARD, epoch=3)
    loaded, data = load_checkpoint(ckpt)
    assert data['epoch'] == 3 and data['options'] == OPTIONS[8] and not loaded.training
    left, right = _pair(32, 64, seed=0)
    with torch.no_grad():
        assert torch.equal(loaded(left, right), model(left, right))

    main(['--checkpoint', str(ckpt), '--name', 'from_ckpt', '--out', str(tmp_path / 'models'),
          '--input-size', '32', '64'])
    printed = capsys.readouterr().out
    card_path = tmp_path / 'models' / 'from_ckpt.json'
    assert f'wrote {card_path}' in printed and 'from_ckpt.s4.onnx' in printed
    card = load_card(card_path)
    assert card.trained is True and card.metrics == CARD['metrics'] and card.input['size'] == [32, 64]
    assert onnx_parity(loaded, card_path) <= 1e-4  # random input at the card's size

    # without --input-size the card gets the size the trainer recorded in the checkpoint
    trained = save_checkpoint(tmp_path / 'trained.pt', model, 'anynet', OPTIONS[8],
                              card={**CARD, 'training': {'input_size': [48, 80]}})
    main(['--checkpoint', str(trained), '--name', 'sized', '--out', str(tmp_path / 'models')])
    assert load_card(tmp_path / 'models' / 'sized.json').input['size'] == [48, 80]


def test_checkpoint_with_options_keeps_the_shared_tensors(tmp_path: Path) -> None:
    """AnyNet without SPN from an SPN-8 checkpoint: stages 1-3 are the same weights and outputs."""
    model = _randomized(8)
    ckpt = save_checkpoint(tmp_path / 'spn8.pt', model, 'anynet', OPTIONS[8], card=CARD)
    main(['--checkpoint', str(ckpt), '--option', 'spn_channels=0', '--name', 'nospn',
          '--out', str(tmp_path), '--input-size', '32', '64'])
    card = load_card(tmp_path / 'nospn.json')
    assert card.options['spn_channels'] == 0 and card.stages == [1, 2, 3] and card.trained
    assert 'dropped' in card.training['derived'] and card.metrics == CARD['metrics']
    left, right = _pair(32, 64, seed=2)
    for k in (1, 3):
        assert onnx_parity(model, tmp_path / 'nospn.json', left, right, stages=k) <= 1e-4
    with pytest.raises(SystemExit, match='depth-ros-export: .*lacks'):  # more SPN channels than were trained
        main(['--checkpoint', str(ckpt), '--option', 'spn_channels=4', '--out', str(tmp_path)])


def test_cli_with_arch_and_options(tmp_path: Path) -> None:
    main(['--arch', 'anynet', '--option', 'spn_channels=0', '--option', 'max_disparity=64',
          '--out', str(tmp_path), '--input-size', '32', '64', '--static'])
    card = load_card(tmp_path / 'anynet.json')
    assert card.options == {'spn_channels': 0, 'max_disparity': 64} and card.stages == [1, 2, 3]
    assert card.output['max_disparity'] == 64.0
    assert card.input['dynamic'] is False and card.trained is False
    dims = onnx.load(str(card.graph_path(1))).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 32, 64]


def test_fp16_weights_halve_the_files_within_tolerance(exported, tmp_path: Path) -> None:
    model, fp32_card = exported[8]
    card_path = export_model('anynet', tmp_path, options=OPTIONS[8],
                             state_dict=model.state_dict(), input_size=SIZE, fp16=True)
    card, ref = load_card(card_path), load_card(fp32_card)
    assert card.name == 'anynet_fp16' and card.output['precision'] == 'fp16'
    assert load_card(export_model('anynet', tmp_path, name='named', options=OPTIONS[8], input_size=SIZE,
                                  fp16=True)).name == 'named'  # a given name is kept as it is
    for k in card.stages:
        path, ref_path = card.graph_path(k), ref.graph_path(k)
        assert path.name == f'anynet_fp16.s{k}.onnx'
        assert path.stat().st_size < 0.75 * ref_path.stat().st_size
        graph = onnx.load(str(path)).graph
        assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.initializer)
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 I/O
    errors = [onnx_parity(model, card_path, *_pair(*SIZE, seed=1), stages=k) for k in card.stages]
    assert all(1e-4 < e < 0.1 for e in errors), errors  # rounded weights: small (px) but real error


def test_mono_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mono network gets one graph `<name>.onnx` (image -> depth) and its card fields."""
    class HalfResDepth(nn.Module):
        multiple_of, output_scale = 8, 0.5

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 1, 3, 1, 1), nn.Softplus())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    monkeypatch.setitem(_registry._MODELS, 'test_half_res', HalfResDepth)
    monkeypatch.setitem(_registry._KINDS, 'test_half_res', 'mono')
    torch.manual_seed(0)
    model = HalfResDepth().eval()
    card_path = export_model('test_half_res', tmp_path, state_dict=model.state_dict(), input_size=(32, 48),
                             card={'f_canonical': 259.4})
    card = load_card(card_path)
    assert [g.file for g in card.graphs] == ['test_half_res.onnx'] and card.stages == [1]
    assert card.output == {'quantity': 'depth', 'unit': 'm', 'scale': 0.5, 'precision': 'fp32'}
    assert card.f_canonical == 259.4 and card.input['multiple_of'] == 8 and card.trained is True
    graph = onnx.load(str(card.graph_path())).graph
    assert [i.name for i in graph.input] == ['image'] and [o.name for o in graph.output] == ['depth']
    assert onnx_parity(model, card_path) <= 1e-5
    assert onnx_parity(model, card_path, torch.rand(1, 3, 40, 64)) <= 1e-5
    assert onnx_parity(HalfResDepth(), card_path) > 1e-3  # other weights: the check does fail
    with pytest.raises(ValueError, match='takes 1 inputs'):
        onnx_parity(model, card_path, *_pair(32, 48, seed=0))
