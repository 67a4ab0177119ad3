"""FastDepth (Wofk et al., ICRA 2019; seed 002): MobileNet encoder + NNConv5 decoder with
additive skip connections.

- ``fastdepth``: MobileNet V1 (ReLU6) encoder; NNConv5 decoder of five up-blocks (5x5
  depthwise conv-BN-ReLU, 1x1 pointwise conv-BN-ReLU, nearest x2) with widths 512, 256, 128,
  64, 32; the encoder outputs at 1/8, 1/4 and 1/2 are added after the up-blocks of the same
  resolution. 3.93 M parameters and 0.74 GMACs at 224x224 in the paper.
- ``fastdepth_mbv2``: seed 002's variant: MobileNet V2 encoder of its Table 1 without the last
  1x1 conv (320 channels at 1/32), its Table 2 decoder (depthwise-separable 5x5 blocks with
  bilinear x2) and four additive skips at 1/16, 1/8, 1/4, 1/2. Table 2 starts from 1024
  channels and a 512-channel first block, which matches neither Table 1's 320-channel output
  nor an additive skip at 1/16 (96 channels); the first block here maps 320 -> 96 so the four
  skips the seed describes line up (widths 96, 32, 24, 16, 32).

Both end with a 1x1 conv (with bias) and :class:`~.layers.PositiveDepth` (FastDepth's last
pointwise conv-BN-ReLU can output exactly zero). Differences from the original code: the
decoder and its skips come from an explicit config instead of string slicing, and no ImageNet
weights are loaded (none are available offline; training starts from scratch).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import layers
from ._registry import register_model

ENCODERS = {'mobilenet_v1': layers.mobilenet_v1, 'mobilenet_v2': layers.mobilenet_v2}


@dataclass(frozen=True)
class FastDepthConfig:
    """encoder: 'mobilenet_v1' | 'mobilenet_v2'; decoder_widths: output channels of the five
    up-blocks (output strides 16, 8, 4, 2, 1); skip_strides: encoder strides whose features are
    added after the up-block with that output stride (channels must match); kernel_size of the
    depthwise convs; upsample: 'nearest' | 'bilinear'."""
    encoder: str = 'mobilenet_v1'
    decoder_widths: tuple[int, ...] = (512, 256, 128, 64, 32)
    skip_strides: tuple[int, ...] = (8, 4, 2)
    kernel_size: int = 5
    upsample: str = 'nearest'


CONFIGS = {
    'fastdepth': FastDepthConfig(),
    'fastdepth_mbv2': FastDepthConfig('mobilenet_v2', (96, 32, 24, 16, 32), (16, 8, 4, 2), 5, 'bilinear'),
}


class FastDepth(layers.MonoDepthNet):
    """Image (B, 3, H, W) in [0, 1] -> depth (B, 1, H, W) in metres; H, W multiples of 32.
    Feature for distillation: the last up-block's output (B, decoder_widths[-1], H, W)."""

    multiple_of = 32
    output_scale = 1.0

    def __init__(self, config: FastDepthConfig):
        super().__init__()
        if config.encoder not in ENCODERS:
            raise ValueError(f'unknown encoder {config.encoder!r}; known: {", ".join(ENCODERS)}')
        if len(config.decoder_widths) != 5:
            raise ValueError('NNConv5 has five up-blocks: give five decoder widths')
        self.config = config
        self.normalize = layers.Normalize()
        self.encoder = ENCODERS[config.encoder]()
        # skip index per up-block: encoder stage i ends at stride 2^(i+1); up-block j outputs stride 2^(4-j)
        self.skip_stage: list[int | None] = [None] * 5
        for stride in config.skip_strides:
            if stride not in (2, 4, 8, 16):
                raise ValueError(f'skip stride must be 2, 4, 8 or 16, not {stride}')
            stage, block = stride.bit_length() - 2, 4 - (stride.bit_length() - 1)
            if self.encoder.channels[stage] != config.decoder_widths[block]:
                raise ValueError(f'additive skip at 1/{stride}: encoder has {self.encoder.channels[stage]} channels, '
                                 f'decoder block {block} has {config.decoder_widths[block]}')
            self.skip_stage[block] = stage
        ins = (self.encoder.channels[-1],) + tuple(config.decoder_widths[:-1])
        self.decoder = nn.ModuleList(layers.DepthwiseSeparable(cin, cout, config.kernel_size, act='relu')
                                     for cin, cout in zip(ins, config.decoder_widths))
        self.head = layers.DepthHead(config.decoder_widths[-1])
        layers.init_weights(self)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(x)
        features = self.encoder(self.normalize(x))
        y = features[-1]
        for block, stage in zip(self.decoder, self.skip_stage):
            y = layers.upsample2x(block(y), self.config.upsample)
            if stage is not None:
                y = y + features[stage]
        return self.head(y), y


def _build(name: str, options: dict[str, Any]) -> FastDepth:
    return FastDepth(dataclasses.replace(CONFIGS[name], **options))


@register_model('fastdepth', kind='mono')
def fastdepth(**options: Any) -> FastDepth:
    """FastDepth (MobileNet V1 + NNConv5, additive skips); options: FastDepthConfig fields."""
    return _build('fastdepth', options)


@register_model('fastdepth_mbv2', kind='mono')
def fastdepth_mbv2(**options: Any) -> FastDepth:
    """Seed 002's MobileNet V2 + NNConv5 variant; options: FastDepthConfig fields."""
    return _build('fastdepth_mbv2', options)
