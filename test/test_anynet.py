"""AnyNet: sizes against seed 003's table, stage outputs, SPN recurrence, warping geometry."""
import pytest
import torch
import torch.nn as nn

from depth_ros.nets import create_model, model_kind
from depth_ros.nets.anynet import (AnyNetConfig, _scan, _scripted_scan, full_cost_volume, propagate,
                                   residual_cost_volume, soft_argmin, warp_right)

SEED_003_PARAMS = {0: 34_629, 1: 34_827, 2: 35_277, 4: 36_933, 8: 43_269}


def _pair(b: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=gen), torch.rand(b, 3, h, w, generator=gen)


@pytest.mark.parametrize('spn', sorted(SEED_003_PARAMS))
def test_parameter_count_matches_seed_table(spn: int) -> None:
    model = create_model('anynet', spn_channels=spn)
    assert sum(p.numel() for p in model.parameters()) == SEED_003_PARAMS[spn]
    assert model.max_stages == (4 if spn else 3) and model.stages == model.max_stages
    assert model_kind('anynet') == 'stereo'
    assert (model.multiple_of, model.output_scale) == (16, 1.0)


@pytest.mark.parametrize('b,h,w', [(1, 32, 64), (2, 48, 80), (1, 64, 32)])
def test_eval_output_shapes_every_stage(b: int, h: int, w: int) -> None:
    torch.manual_seed(0)
    model = create_model('anynet').eval()
    left, right = _pair(b, h, w)
    for k in range(1, 5):
        model.stages = k
        with torch.no_grad():
            out = model(left, right)
        assert out.shape == (b, 1, h, w)
        assert torch.isfinite(out).all()


def test_train_mode_returns_all_stages() -> None:
    torch.manual_seed(0)
    model = create_model('anynet', spn_channels=2).train()
    left, right = _pair(2, 32, 48)
    outs = model(left, right)
    assert isinstance(outs, list) and len(outs) == 4
    assert all(o.shape == (2, 1, 32, 48) and torch.isfinite(o).all() for o in outs)
    model.stages = 2
    assert len(model(left, right)) == 2
    assert len(create_model('anynet', spn_channels=0).train()(left, right)) == 3


def test_running_fewer_stages_gives_the_same_stage_outputs() -> None:
    """Eval with stages=k (decoder levels and later stages skipped) equals stage k of a full run."""
    torch.manual_seed(0)
    model = create_model('anynet').train()
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            m.eval()  # running statistics, as in eval mode, while forward still returns every stage
    left, right = _pair(1, 48, 64)
    with torch.no_grad():
        full = model(left, right)
        model.eval()
        for k in range(1, 5):
            model.stages = k
            assert torch.equal(model(left, right), full[k - 1])


def test_invalid_inputs_and_options_raise() -> None:
    model = create_model('anynet', spn_channels=0)
    with pytest.raises(ValueError, match='multiples of 16'):
        model(*_pair(1, 40, 64))
    with pytest.raises(ValueError, match='B, 3, H, W'):
        model(torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 48))
    with pytest.raises(ValueError):
        model.stages = 4  # no SPN
    with pytest.raises(ValueError):
        AnyNetConfig(spn_channels=3)
    with pytest.raises(ValueError):
        AnyNetConfig(max_disparity=100)


def test_a_narrower_shallower_anynet_starts_from_a_wider_ones_weights() -> None:
    """load_narrowed: features and SPN as they are, each regularizer's first layer, first middle
    layers and last (output) layer, their leading channels; the result runs. A wider target raises."""
    wide = create_model('anynet', max_disparity=64)
    for m in wide.modules():  # non-trivial BatchNorm statistics to copy
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
    narrow = create_model('anynet', max_disparity=64, growth_rate=(2, 1, 1), layers_3d=2)
    narrow.load_narrowed(wide.state_dict())
    assert all(torch.equal(v, wide.state_dict()[k]) for k, v in narrow.state_dict().items()
               if k.startswith(('features.', 'spn.')))
    for k in range(3):
        short, long = narrow.nets3d[k], wide.nets3d[k]
        assert len(short) == 4 and len(long) == 6
        for i, j in ((0, 0), (1, 1), (2, 2), (3, 5)):
            w, v = short[i][2].weight, long[j][2].weight
            assert torch.equal(w, v[:w.shape[0], :w.shape[1]])
            assert torch.equal(short[i][0].running_mean, long[j][0].running_mean[:short[i][0].num_features])
    with torch.no_grad():
        narrow.eval()(*_pair(1, 64, 128))  # runs
    with pytest.raises(ValueError, match='nets3d.0.0.2.weight'):
        create_model('anynet', max_disparity=64, growth_rate=(8, 1, 1)).load_narrowed(wide.state_dict())


def test_float64_follows_input_dtype() -> None:
    """Grids and disparity values are built with the input's dtype and device."""
    torch.manual_seed(0)
    model = create_model('anynet').eval()
    left, right = _pair(1, 32, 64)
    with torch.no_grad():
        out32 = model(left, right)
        out64 = model.double()(left.double(), right.double())
    assert out64.dtype == torch.float64
    assert (out64 - out32.double()).abs().max() < 1e-3


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = create_model('anynet', spn_channels=4).train()
    left, right = _pair(2, 32, 64)
    target = torch.full((2, 1, 32, 64), 20.0)
    loss = sum(w * nn.functional.smooth_l1_loss(o, target) for w, o in zip((0.25, 0.5, 1, 1), model(left, right)))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def _naive_propagation(x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor) -> torch.Tensor:
    """Per-pixel loop of the original GateRecurrent2dnoind kernel (left to right)."""
    b, c, hgt, wid = x.shape
    out = torch.zeros_like(x)
    for n in range(b):
        for ch in range(c):
            for t in range(wid):
                for i in range(hgt):
                    acc, used = 0.0, 0.0
                    for gate, di in ((g1, -1), (g2, 0), (g3, 1)):
                        if t > 0 and 0 <= i + di < hgt:  # gate is zero where the neighbour is outside
                            g = gate[n, ch, i, t].item()
                            acc += g * out[n, ch, i + di, t - 1].item()
                            used += g
                    out[n, ch, i, t] = (1 - used) * x[n, ch, i, t].item() + acc
    return out


def test_spn_recurrence_matches_naive_loop() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 5, 6, generator=gen, dtype=torch.float64)
    g = torch.randn(3, 2, 2, 5, 6, generator=gen, dtype=torch.float64)
    g = g / (g.abs().sum(0) + 1e-8)
    expected = _naive_propagation(x, *g)
    assert (propagate(x, *g) - expected).abs().max() < 1e-12
    # the TorchScript version (used when tracing for ONNX) computes the same thing
    args = [t.permute(3, 0, 1, 2).flatten(1, 2) for t in (x, *g)]
    assert torch.equal(_scripted_scan()(*args), _scan(*args))


def test_spn_with_zero_gates_is_identity_and_propagates_along_rows() -> None:
    x = torch.randn(1, 3, 4, 7)
    zero = torch.zeros_like(x)
    assert torch.equal(propagate(x, zero, zero, zero), x)
    # G2 = 1 everywhere: every row is filled with its first column
    out = propagate(x, zero, torch.ones_like(x), zero)
    assert torch.allclose(out, x[..., :1].expand_as(x))


def _shifted_features(d: int, c: int = 4, h: int = 6, w: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Left features and right features with right(x) = left(x + d), i.e. true disparity d."""
    gen = torch.Generator().manual_seed(1)
    scene = torch.randn(1, c, h, w + d, generator=gen)
    return scene[..., :w], scene[..., d:]


def test_warp_by_true_disparity_aligns_features() -> None:
    left, right = _shifted_features(d=3)
    warped = warp_right(right, torch.full((1, 1, 6, 20), 3.0))[:, :, 0]
    assert torch.allclose(warped[..., 3:], left[..., 3:], atol=1e-6)
    assert warped[..., :3].abs().max() < 1e-5  # sampled left of the right image: zero padding


def test_cost_volumes_are_minimal_at_the_true_disparity() -> None:
    d = 5
    left, right = _shifted_features(d)
    full = full_cost_volume(left, right, 8)
    assert (full[..., d:].argmin(1) == d).all()
    # residual volume around an estimate 1 px too small: channel s = -2..2 has candidate d0 + s
    d0 = torch.full((1, 1, 6, 20), d - 1.0)
    cost = residual_cost_volume(left, right, d0, radius=2)
    interior = cost[..., d + 2:]
    assert (interior.argmin(1) == 2 + 1).all()
    assert interior.min(1).values.abs().max() < 1e-5
    residual = soft_argmin(100 * interior, first=-2)  # sharp softmax: the regressed residual is +1
    assert torch.allclose(residual, torch.ones_like(residual), atol=1e-3)


def test_incremental_step_graphs_match_the_full_graphs_and_stop_at_a_deadline(tmp_path) -> None:
    """Steps split from an exported AnyNet give every stage's full-graph output; a passed
    deadline leaves stage 1 as the answer, no deadline runs every stage."""
    import shutil
    import time

    import numpy as np

    from depth_ros.inference import StereoEstimator
    from depth_ros.nets.anynet_steps import split_card
    from depth_ros.nets.export import export_model

    torch.manual_seed(0)
    full = export_model('anynet', tmp_path / 'full', options={'max_disparity': 64}, input_size=(64, 128))
    shutil.copytree(tmp_path / 'full', tmp_path / 'steps')
    split_card(tmp_path / 'steps' / full.name)
    rng = np.random.default_rng(0)
    right = rng.integers(0, 256, (64, 160, 3), np.uint8)
    left = np.roll(right, 5, axis=1)
    old, new = StereoEstimator(full), StereoEstimator(tmp_path / 'steps' / full.name)
    assert new.incremental and not old.incremental and new.available_stages == [1, 2, 3, 4]
    for k in (1, 2, 3, 4):
        old.stages = new.stages = k
        np.testing.assert_allclose(new(left, right), old(left, right), atol=1e-4)
        assert new.last_stage == k and len(new.stage_seconds) == k
    new(left, right, deadline=time.monotonic() - 1)
    assert new.last_stage == 1
    new(left, right, deadline=time.monotonic() + 60)
    assert new.last_stage == 4
    new._net.step_s[2] = 5.0  # stage 2 once measured under a load spike: left out, then tried again
    answered = []
    for _ in range(40):
        new(left, right, deadline=time.monotonic() + 0.5)
        answered.append(new.last_stage)
        if new.last_stage > 1:
            break
    assert answered[0] == 1 and 10 < len(answered) < 40 and answered[-1] == 4
    assert new.stage_seconds[2] < 0.5
    with pytest.raises(ValueError, match='already'):
        split_card(tmp_path / 'steps' / full.name)
    # the 1-8 channel feature and SPN convolutions and the regularizers' 3-output last layers run as
    # depth-1 Conv3d (ONNX Runtime's NCHWc transformer would pad their outputs), the regularizers'
    # other layers, the SPN guidance's 16-24 channel ones and the stem's on 4x4 phases as 2D (which
    # it blocks); the SPN's column recurrence is a Scan, not a Loop
    import onnx
    graphs = [onnx.load(tmp_path / 'steps' / f'{full.name[:-5]}.s{k}.onnx').graph for k in range(1, 5)]
    convs = [n for g in graphs for n in g.node if n.op_type == 'Conv']
    ranks = {(n.name.split('/')[1], n.name.startswith('/spn/guidance/'),
              len(next(a.ints for a in n.attribute if a.name == 'kernel_shape'))) for n in convs}
    assert ranks == {('stem_phases', False, 2), ('features', False, 3), ('spn', False, 3), ('spn', True, 2)} | {
        (f'nets3d.{k}', False, r) for k in range(3) for r in (2, 3)}
    assert {n.op_type for n in graphs[3].node} >= {'Scan'} and 'Loop' not in {n.op_type for n in graphs[3].node}
    # each step ends before its stage's full-size upsampling, which the runtime does (OpenCV)
    assert [sorted(o.name for o in g.output) for g in graphs] == [
        ['coarse', 'f16', 'f4', 'f8'], ['residual', 'up8'], ['residual'], ['coarse']]
    assert 'Resize' not in {n.op_type for n in graphs[0].node}
    assert [sum(n.op_type in ('GridSample', 'GatherElements') for n in g.node) for g in graphs] == [0, 1, 1, 0]
    assert not any(n.op_type == 'GridSample' for g in graphs for n in g.node)  # one row gather per warp
