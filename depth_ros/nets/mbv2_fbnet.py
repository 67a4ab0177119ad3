"""Seed 004 (Yucel et al., "Real-time monocular depth estimation with sparse supervision on
mobile"): MobileNet V2 encoder + FBNet-style decoder ("MNet v2 + FBNet x112"), and its
structured-pruned ~1 M variant.

Architecture (the seed gives the blocks, not every width; choices here are documented):

- encoder: MobileNet V2 features including the final 1x1 conv to 1280 channels. The seed's
  own count implies it: its "MobileNet v2 + NNConv5" has 3.1 M parameters, and MobileNet V2
  with the 1280 conv plus FastDepth's NNConv5 decoder has exactly 3,115,809 (without the
  conv it would be 2.19 M);
- decoder: four FBNet up-blocks (1x1 expand + BN + ReLU, nearest x2, 3x3 depthwise + BN +
  ReLU, 1x1 project + BN; :class:`~.layers.InvertedResidual` with ``upsample``) with widths
  96, 32, 24, 16 = the encoder widths at 1/16, 1/8, 1/4, 1/2, which are added (FastDepth's
  additive skips). With the 1/32 output the decoder starts from, the encoder thus feeds the
  decoder at all five strides ("five skip connections"). Expansion: 3 x the block's output
  width (a decoder narrows, so expanding the wide input would dominate the size);
- "x112": the fifth up-block (112 -> 224 at 224x224 input) is replaced by plain bilinear
  upsampling of the 1/2-resolution features, then a 3x3 prediction conv;
- two intermediate prediction heads (an FBNet up-block + prediction conv) after the 2nd and
  3rd decoder blocks, giving depth at 1/4 and 1/2 resolution, used only in training: in
  training mode ``forward`` returns [final, aux(1/4), aux(1/2)] (loss weights 0.5, 0.25, 0.25
  in the seed); in eval mode only the final depth (B, 1, H, W). They are removed from the
  parameter count, as in the seed (``aux_heads=False`` builds the network without them).

Without the heads this gives 2,645,433 parameters (seed: 2.6 M). ``mbv2_fbnet_pruned`` is the
same graph with every prunable width (block expansions, the 1280 conv) scaled by
``hidden_ratio`` = 0.41: 1,003,945 parameters (seed: ~1 M). :func:`prune_mbv2_fbnet` builds
it from a trained ``mbv2_fbnet`` by keeping, in each such layer, the channels whose BN-scaled
filters have the largest L1 norm and copying their weights (the seed prunes with NetAdapt;
this is the simpler magnitude criterion; fine-tune afterwards). No ImageNet weights are
loaded.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import layers
from ._registry import register_model


@dataclass(frozen=True)
class MBV2FBNetConfig:
    """hidden_ratio: scale of every prunable width (encoder expansions, the last encoder conv,
    decoder expansions); last_width: output channels of the encoder's last 1x1 conv (before
    scaling); decoder_widths: up-block outputs, must equal the encoder widths at 1/16 .. 1/2
    (additive skips); expansion: up-block hidden width / output width; kernel_size of the
    depthwise convs; aux_heads: build the two training-only intermediate heads."""
    hidden_ratio: float = 1.0
    last_width: int = 1280
    decoder_widths: tuple[int, ...] = (96, 32, 24, 16)
    expansion: int = 3
    kernel_size: int = 3
    aux_heads: bool = True


PRUNED = MBV2FBNetConfig(hidden_ratio=0.41, aux_heads=False)


class MBV2FBNet(layers.MonoDepthNet):
    """Image (B, 3, H, W) in [0, 1] -> depth (B, 1, H, W) in metres; H, W multiples of 32.
    Feature for distillation: the last up-block's output after its skip (B, 16, H/2, W/2)."""

    multiple_of = 32
    output_scale = 1.0

    def __init__(self, config: MBV2FBNetConfig):
        super().__init__()
        self.config = config
        r = config.hidden_ratio
        self.normalize = layers.Normalize()
        self.encoder = layers.mobilenet_v2(r)
        skips = self.encoder.channels[-2::-1]
        if tuple(config.decoder_widths) != skips:
            raise ValueError(f'decoder widths {tuple(config.decoder_widths)} must equal the encoder widths {skips} '
                             'at 1/16 .. 1/2 (additive skips)')
        last = layers.make_divisible(config.last_width * r)
        self.encoder_head = layers.ConvBNAct(self.encoder.channels[-1], last, 1, act='relu6')
        ins = (last,) + skips[:-1]
        self.decoder = nn.ModuleList(self._up_block(cin, cout) for cin, cout in zip(ins, skips))
        self.head = layers.DepthHead(skips[-1], 3)
        if config.aux_heads:
            self.aux = nn.ModuleList(nn.Sequential(self._up_block(c, c), layers.DepthHead(c, 3)) for c in skips[1:3])
        layers.init_weights(self)

    def _up_block(self, cin: int, cout: int) -> layers.InvertedResidual:
        hidden = layers.make_divisible(cout * self.config.expansion * self.config.hidden_ratio)
        return layers.InvertedResidual(cin, cout, hidden, 1, self.config.kernel_size, act='relu', upsample=True)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
        self.check_input(x)
        f = self.encoder(self.normalize(x))
        y = self.encoder_head(f[-1])
        aux_inputs = []
        for block, skip in zip(self.decoder, f[-2::-1]):
            y = block(y) + skip
            aux_inputs.append(y)
        depth = self.head(layers.upsample2x(y, 'bilinear'))
        if self.training and self.config.aux_heads:
            return [depth] + [head(z) for head, z in zip(self.aux, aux_inputs[1:3])], y
        return depth, y


def _filter_scores(producer: layers.ConvBNAct) -> torch.Tensor:
    """Per output channel of a conv-BN-act: L1 norm of the conv filter times the BN scale
    |gamma| / sqrt(running_var + eps) (the filter's magnitude as the next layer sees it)."""
    conv, bn = producer[0], producer[1]
    scale = bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps)
    return conv.weight.abs().flatten(1).sum(1) * scale


def _copy_conv_bn(src: layers.ConvBNAct, dst: layers.ConvBNAct, out_idx: torch.Tensor | None,
                  in_idx: torch.Tensor | None = None) -> None:
    """Copy the conv (rows ``out_idx``, input columns ``in_idx`` unless depthwise) and its BN."""
    weight = src[0].weight
    if out_idx is not None:
        weight = weight[out_idx]
    if in_idx is not None and src[0].groups == 1:
        weight = weight[:, in_idx]
    dst[0].weight.copy_(weight)
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        value = getattr(src[1], name)
        getattr(dst[1], name).copy_(value if out_idx is None else value[out_idx])
    dst[1].num_batches_tracked.copy_(src[1].num_batches_tracked)


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores, in ascending channel order."""
    return torch.sort(torch.topk(scores, k).indices).values


def _prune_block(src: layers.InvertedResidual, dst: layers.InvertedResidual, in_idx: torch.Tensor | None) -> None:
    """Copy src into the narrower dst: keep dst.hidden expanded channels (largest scores)."""
    keep = _top(_filter_scores(src.expand), dst.hidden)
    _copy_conv_bn(src.expand, dst.expand, keep, in_idx)
    _copy_conv_bn(src.depthwise, dst.depthwise, keep)
    dst.project[0].weight.copy_(src.project[0].weight[:, keep])


@torch.no_grad()
def prune_mbv2_fbnet(model: MBV2FBNet, config: MBV2FBNetConfig = PRUNED) -> MBV2FBNet:
    """Structured (channel) pruning of a trained ``mbv2_fbnet`` to the narrower ``config``
    (default: the ``mbv2_fbnet_pruned`` config): in every expanded layer and in the encoder's
    last conv, keep the channels with the largest BN-scaled filter L1 norm, copy their weights
    (and the matching input columns of the next layer); every other weight is copied as is.
    Returns the pruned network in eval mode; fine-tune it afterwards."""
    pruned = MBV2FBNet(config)
    own = pruned.state_dict()
    pruned.load_state_dict({k: v for k, v in model.state_dict().items() if k in own and v.shape == own[k].shape},
                           strict=False)
    keep_last = _top(_filter_scores(model.encoder_head), pruned.encoder_head[0].out_channels)
    _copy_conv_bn(model.encoder_head, pruned.encoder_head, keep_last)
    pairs = [(s, d, None) for s, d in zip(model.encoder.modules(), pruned.encoder.modules())]
    pairs += [(s, d, keep_last if i == 0 else None) for i, (s, d) in enumerate(zip(model.decoder, pruned.decoder))]
    if model.config.aux_heads and config.aux_heads:
        pairs += [(s[0], d[0], None) for s, d in zip(model.aux, pruned.aux)]
    for src, dst, in_idx in pairs:
        if isinstance(src, layers.InvertedResidual) and hasattr(src, 'expand'):
            _prune_block(src, dst, in_idx)
    return pruned.eval()


@register_model('mbv2_fbnet', kind='mono')
def mbv2_fbnet(**options: Any) -> MBV2FBNet:
    """Seed 004's MobileNet V2 + FBNet x112 network (2.6 M); options: MBV2FBNetConfig fields."""
    return MBV2FBNet(dataclasses.replace(MBV2FBNetConfig(), **options))


@register_model('mbv2_fbnet_pruned', kind='mono')
def mbv2_fbnet_pruned(**options: Any) -> MBV2FBNet:
    """The ~1 M channel-pruned mbv2_fbnet (fill it with :func:`prune_mbv2_fbnet`)."""
    return MBV2FBNet(dataclasses.replace(PRUNED, **options))
