"""Seed 003's convolutional autoencoder (the Keras "monocular depth estimation" example).

Structure (seed 003 Table 1), filters 16-32-64-128-256:

- down block: conv3x3 (bias) -> d; BN + act; conv3x3 (bias) + BN + act; x = x + d (the
  example's residual); 2x2 max-pool. Its pre-pool output is the skip;
- bottleneck: 2 x (conv3x3 (bias) + act);
- up block: nearest x2, concatenation with the skip, 2 x (conv3x3 (bias) + BN + act);
- head: 1x1 conv (bias) to one channel.

``levels=4`` is the 4-1-4 model (down 16, 32, 64, 128; bottleneck 256), ``levels=3`` the 3-1-3
one (down 16, 32, 64; bottleneck 128). ``act`` is 'leaky_relu' (slope 0.2) or 'swish'.

Parameter counts: the seed's 1,966,467 (4-1-4) and 489,091 (3-1-3) are Keras ``count_params``
totals. They include each BatchNorm's moving mean and variance (non-trainable in Keras,
buffers here) and the two variables (total, count) of the Keras model's ``loss`` Mean
metric, which the example stores as a model attribute. So for this module
``parameters + BN running statistics + 2`` equals the seed's numbers exactly (see
:func:`keras_count`); the trainable parameters are 1,964,545 and 488,193.

The example ends with tanh (depth normalised to [-1, 1]); here the head ends with
:class:`~.layers.PositiveDepth` for metric depth.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import layers
from ._registry import register_model

KERAS_LOSS_METRIC_VARIABLES = 2  # total and count of the example's `loss` Mean metric


@dataclass(frozen=True)
class AutoencoderConfig:
    """levels: down/up blocks (4 -> 4-1-4, 3 -> 3-1-3); act: 'leaky_relu' | 'swish';
    filters: widths of the down blocks and the bottleneck (the first levels + 1 are used)."""
    levels: int = 4
    act: str = 'leaky_relu'
    filters: tuple[int, ...] = (16, 32, 64, 128, 256)


class DownBlock(nn.Module):
    """(B, cin, H, W) -> (skip (B, cout, H, W), pooled (B, cout, H/2, W/2))."""

    def __init__(self, cin: int, cout: int, act: str):
        super().__init__()
        self.conv_a = nn.Conv2d(cin, cout, 3, padding=1)
        self.act_a = nn.Sequential(nn.BatchNorm2d(cout), layers.make_activation(act))
        self.conv_b = layers.ConvBNAct(cout, cout, 3, act=act, bias=True)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.conv_a(x)
        x = self.conv_b(self.act_a(d)) + d
        return x, self.pool(x)


class DepthAutoencoder(layers.MonoDepthNet):
    """Image (B, 3, H, W) in [0, 1] -> depth (B, 1, H, W) in metres; H, W multiples of
    2^levels. Feature for distillation: the last up block (B, filters[0], H, W)."""

    output_scale = 1.0

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        if config.levels not in (3, 4) or len(config.filters) < config.levels + 1:
            raise ValueError(f'levels must be 3 or 4 with levels + 1 filters, got {config.levels}, {config.filters}')
        self.config = config
        self.multiple_of = 2 ** config.levels
        f = tuple(config.filters[:config.levels + 1])
        self.normalize = layers.Normalize()
        self.down = nn.ModuleList(DownBlock(cin, cout, config.act) for cin, cout in zip((3,) + f[:-2], f[:-1]))
        self.bottleneck = nn.Sequential(layers.ConvBNAct(f[-2], f[-1], 3, act=config.act, norm=False),
                                        layers.ConvBNAct(f[-1], f[-1], 3, act=config.act, norm=False))
        self.decoder = layers.UNetDecoder(f[-1], f[-2::-1], f[-2::-1], act=config.act, norm=True, bias=True,
                                          mode='nearest')
        self.head = layers.DepthHead(f[0])
        layers.init_weights(self)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(x)
        x = self.normalize(x)
        skips = []
        for block in self.down:
            skip, x = block(x)
            skips.append(skip)
        y = self.decoder(self.bottleneck(x), skips[::-1])
        return self.head(y), y


def keras_count(model: nn.Module) -> int:
    """What Keras ``count_params`` reports for the example's model: parameters + BatchNorm
    running mean/variance + the 2 variables of its loss metric."""
    stats = sum(m.running_mean.numel() + m.running_var.numel()
                for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    return sum(p.numel() for p in model.parameters()) + stats + KERAS_LOSS_METRIC_VARIABLES


@register_model('autoencoder', kind='mono')
def autoencoder(**options: Any) -> DepthAutoencoder:
    """Seed 003's autoencoder; options: levels (4 | 3), act ('leaky_relu' | 'swish'), filters."""
    return DepthAutoencoder(dataclasses.replace(AutoencoderConfig(), **options))
