"""Teacher for knowledge distillation (seed 004): a DenseDepth-like U-Net on a ResNet encoder.

DenseDepth (Alhashim & Wonka 2018) puts a light decoder on a big ImageNet encoder: a 1x1 conv
to ``decoder_width`` x the encoder's channels, then four up blocks (bilinear x2, concatenated
skip, 2 x [3x3 conv + LeakyReLU 0.2]) halving the width each time, and a 3x3 prediction conv
at 1/2 resolution. Here the encoder is a ResNet written in :mod:`.layers` (DenseNet-169 in
the original): ResNet-50 by default (about 41 M parameters, near DenseDepth's 42.6 M), or
``encoder_depth=34`` / ``18`` to keep training on a CPU possible. The half-resolution
prediction is upsampled (bilinear x2) so the teacher's depth matches the input size.

No ImageNet weights are loaded (none are available offline): the teacher trains from scratch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


from . import layers
from ._registry import register_model


@dataclass(frozen=True)
class TeacherConfig:
    """encoder_depth: ResNet 50 | 34 | 18; decoder_width: the decoder's input width as a
    fraction of the encoder's last channel count (its four blocks have 1/2 .. 1/16 of it)."""
    encoder_depth: int = 50
    decoder_width: float = 0.5


class Teacher(layers.UNetDepthNet):
    """Image (B, 3, H, W) in [0, 1] -> depth (B, 1, H, W) in metres; H, W multiples of 32.
    Feature for distillation: the last up block (B, width / 16, H/2, W/2)."""

    multiple_of = 32
    output_scale = 1.0

    def __init__(self, config: TeacherConfig):
        super().__init__()
        self.config = config
        self.normalize = layers.Normalize()
        self.encoder = layers.resnet(config.encoder_depth)
        width = int(self.encoder.channels[-1] * config.decoder_width)
        widths = tuple(width // 2 ** (i + 1) for i in range(4))
        self.decoder = layers.UNetDecoder(self.encoder.channels[-1], self.encoder.channels[-2::-1], widths,
                                          act='leaky_relu', norm=False, mode='bilinear', input_width=width)
        self.head = layers.DepthHead(widths[-1], 3)
        layers.init_weights(self)


@register_model('teacher', kind='mono')
def teacher(**options: Any) -> Teacher:
    """DenseDepth-like ResNet U-Net teacher; options: encoder_depth (50 | 34 | 18), decoder_width."""
    return Teacher(dataclasses.replace(TeacherConfig(), **options))
