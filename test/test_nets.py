"""Every registered network: shapes at two input sizes, finite (mono: positive) outputs,
training-mode outputs and gradients, ONNX export + ONNX Runtime parity; parameter counts
against the numbers the seeds report; structured pruning of mbv2_fbnet."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from depth_ros.model_card import load_card
from depth_ros.nets import create_model, list_models, model_kind
from depth_ros.nets.autoencoder import keras_count
from depth_ros.nets.export import export_model, onnx_parity
from depth_ros.nets.layers import InvertedResidual
from depth_ros.nets.mbv2_fbnet import prune_mbv2_fbnet

MODELS = list_models()
SIZES = ((64, 96), (96, 128))  # (H, W) px, multiples of 32


def _inputs(name: str, batch: int, height: int, width: int) -> list[torch.Tensor]:
    """Random RGB in [0, 1]: one image (mono) or a (left, right) pair (stereo)."""
    return [torch.rand(batch, 3, height, width) for _ in range(2 if model_kind(name) == 'stereo' else 1)]


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('name', MODELS)
def test_forward_shapes_and_values(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert model_kind(name) in ('mono', 'stereo')
    for height, width in SIZES:
        assert height % model.multiple_of == 0 and width % model.multiple_of == 0
        with torch.no_grad():
            out = model(*_inputs(name, 2, height, width))
        assert isinstance(out, torch.Tensor)
        assert out.shape == (2, 1, round(height * model.output_scale), round(width * model.output_scale))
        assert torch.isfinite(out).all()
        if model_kind(name) == 'mono':
            assert (out > 0).all()
    bad = SIZES[0][0] + model.multiple_of // 2
    with pytest.raises(ValueError, match='multiple'):
        model(*_inputs(name, 1, bad, SIZES[0][1]))


@pytest.mark.parametrize('name', list_models(kind='mono'))
def test_mono_training_mode_features_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).train()
    height, width = SIZES[0]
    out, feature = model.forward_with_features(torch.rand(2, 3, height, width))
    outputs = out if isinstance(out, list) else [out]
    assert isinstance(out, list) == hasattr(model, 'aux')  # only networks with auxiliary heads return lists
    final = (2, 1, round(height * model.output_scale), round(width * model.output_scale))
    assert outputs[0].shape == final
    for o in outputs:
        assert o.dim() == 4 and o.shape[:2] == (2, 1) and (o > 0).all() and torch.isfinite(o).all()
    assert feature.dim() == 4 and feature.shape[0] == 2 and torch.isfinite(feature).all()
    loss = sum(o.log().mean() for o in outputs) + feature.square().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f'parameters without a finite gradient: {missing[:5]}'
    model.eval()
    with torch.no_grad():
        depth, _ = model.forward_with_features(torch.rand(1, 3, height, width))
    assert isinstance(depth, torch.Tensor) and depth.shape == (1,) + final[1:]


@pytest.mark.parametrize('name', MODELS)
def test_onnx_export_parity(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    card_path = export_model(name, tmp_path, state_dict=model.state_dict(), input_size=SIZES[0],
                             card={'trained': False})
    card = load_card(card_path)
    assert card.kind == model_kind(name) and card.output['scale'] == model.output_scale
    assert card.input['multiple_of'] == model.multiple_of and not card.trained
    for height, width in SIZES:  # the export size and another one: the axes are dynamic
        err = onnx_parity(model, card_path, *_inputs(name, 1, height, width))
        assert err <= 1e-4, f'{name} at {height}x{width}: ONNX Runtime differs from torch by {err}'


# (model, options, reported count, relative tolerance, how the source counts, source)
PARAM_COUNTS = [
    ('fastdepth', {}, 3_930_000, 0.02, 'torch', 'FastDepth paper (model-facts.md): 3.93 M'),
    ('lightdepth', {}, 14_330_369, 0.0, 'torch', 'seed 000'),
    ('yolo_unet', {}, 2_142_192, 0.02, 'torch', 'seed 001 Table 1 (whole network, see yolo_unet.py)'),
    ('autoencoder', {'levels': 4}, 1_966_467, 0.0, 'keras', 'seed 003 Table 2, 4-1-4 LeakyReLU'),
    ('autoencoder', {'levels': 3}, 489_091, 0.0, 'keras', 'seed 003 Table 2, 3-1-3 LeakyReLU'),
    ('autoencoder', {'levels': 3, 'act': 'swish'}, 489_091, 0.0, 'keras', 'seed 003 Table 2, 3-1-3 Swish'),
    ('mbv2_fbnet', {'aux_heads': False}, 2_600_000, 0.02, 'torch', 'seed 004: 2.6 M (heads removed)'),
    ('mbv2_fbnet_pruned', {}, 1_000_000, 0.02, 'torch', 'seed 004: pruned v3, 1 M'),
]


@pytest.mark.parametrize('name,options,reported,tolerance,counter,source', PARAM_COUNTS,
                         ids=[f'{r[0]}{r[1] or ""}' for r in PARAM_COUNTS])
def test_parameter_counts(name: str, options: dict, reported: int, tolerance: float, counter: str,
                          source: str) -> None:
    model = create_model(name, **options)
    count = keras_count(model) if counter == 'keras' else _params(model)
    assert abs(count - reported) <= tolerance * reported, f'{name} {options}: {count} vs {reported} ({source})'


def test_fastdepth_macs_match_the_paper() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model('fastdepth').eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 3, 224, 224))
    assert abs(counter.get_total_flops() / 2e9 - 0.74) <= 0.02  # GMACs at 224x224


@torch.no_grad()
def test_prune_mbv2_fbnet_keeps_the_strongest_channels() -> None:
    """Channels that a trained network does not use (zero BN scale and shift) must be the ones
    removed; then the pruned network computes exactly what the full one does."""
    torch.manual_seed(0)
    model = create_model('mbv2_fbnet')
    target = create_model('mbv2_fbnet_pruned')
    for m in model.modules():  # trained-looking BN affine parameters and statistics
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)

    def expanded(net: nn.Module) -> list[InvertedResidual]:
        aux = [m for head in getattr(net, 'aux', []) for m in head.modules()]
        return [m for m in net.modules() if isinstance(m, InvertedResidual) and hasattr(m, 'expand')
                and not any(m is a for a in aux)]  # the pruned network has no auxiliary heads

    blocks, kept = expanded(model), expanded(target)
    assert len(blocks) == len(kept) == 20
    # prunable channel groups: the BNs that carry each channel, and how many channels remain
    groups = [((model.encoder_head[1],), target.encoder_head[0].out_channels)]
    groups += [((b.expand[1], b.depthwise[1]), k.hidden) for b, k in zip(blocks, kept)]
    dead_total = total = 0
    for bns, keep in groups:
        dead = torch.randperm(bns[0].num_features)[keep:]
        dead_total, total = dead_total + len(dead), total + bns[0].num_features
        for bn in bns:
            bn.weight[dead] = 0.0
            bn.bias[dead] = 0.0
    assert dead_total > 0.5 * total  # most expanded channels go

    pruned = prune_mbv2_fbnet(model)
    assert _params(pruned) == _params(target)
    assert not pruned.training and not hasattr(pruned, 'aux')
    model.eval()
    x = torch.rand(2, 3, *SIZES[0])
    full, full_feature = model.forward_with_features(x)
    small, small_feature = pruned.forward_with_features(x)
    assert (full - small).abs().max() <= 1e-5 * full.abs().max()
    assert (full_feature - small_feature).abs().max() <= 1e-5 * full_feature.abs().max()
