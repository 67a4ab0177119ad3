"""LightDepth (seed 000): ResNet-18 encoder + U-Net decoder with concatenated skips.

Layout that gives the seed's 14,330,369 parameters exactly:

- encoder: ResNet-18 without pooling/classifier (11,176,512), features f0..f4 =
  64 @ 1/2, 64 @ 1/4, 128 @ 1/8, 256 @ 1/16, 512 @ 1/32;
- decoder: four stages 512+256 -> 256, 256+128 -> 128, 128+64 -> 64, 64+64 -> 32, each =
  bilinear x2 of the input, concatenation with the skip, then two 3x3 convs (no bias) + BN +
  ReLU (3,142,656 conv + 1,920 BN parameters);
- head: 3x3 conv 32 -> 32 (bias) + ReLU, 1x1 conv 32 -> 1 (bias) (9,281 parameters) at 1/2,
  then bilinear x2 to the input size.

The seed's head ends with a ReLU; here :class:`~.layers.PositiveDepth` (softplus) keeps the
depth strictly positive without changing the count. The seed starts from ImageNet weights;
none are available offline, so the encoder trains from scratch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from . import layers
from ._registry import register_model


@dataclass(frozen=True)
class LightDepthConfig:
    """encoder_depth: ResNet depth (18, 34 or 50); decoder_widths: outputs of the four decoder
    stages (1/16 .. 1/2); head_width: channels of the head's 3x3 conv."""
    encoder_depth: int = 18
    decoder_widths: tuple[int, ...] = (256, 128, 64, 32)
    head_width: int = 32


class LightDepth(layers.UNetDepthNet):
    """Image (B, 3, H, W) in [0, 1] -> depth (B, 1, H, W) in metres; H, W multiples of 32.
    Feature for distillation: the last decoder stage (B, decoder_widths[-1], H/2, W/2)."""

    multiple_of = 32
    output_scale = 1.0

    def __init__(self, config: LightDepthConfig):
        super().__init__()
        if len(config.decoder_widths) != 4:
            raise ValueError('LightDepth has four decoder stages: give four widths')
        self.config = config
        self.normalize = layers.Normalize()
        self.encoder = layers.resnet(config.encoder_depth)
        skips = self.encoder.channels[-2::-1][:4]
        self.decoder = layers.UNetDecoder(self.encoder.channels[-1], skips, tuple(config.decoder_widths),
                                          act='relu', norm=True, mode='bilinear')
        self.head = nn.Sequential(layers.ConvBNAct(config.decoder_widths[-1], config.head_width, 3, norm=False),
                                  layers.DepthHead(config.head_width))
        layers.init_weights(self.decoder)
        layers.init_weights(self.head)


@register_model('lightdepth', kind='mono')
def lightdepth(**options: Any) -> LightDepth:
    """LightDepth (ResNet-18 U-Net, 14,330,369 params); options: LightDepthConfig fields."""
    return LightDepth(dataclasses.replace(LightDepthConfig(), **options))
