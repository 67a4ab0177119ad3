"""Seed 001: YOLOv8-seg backbone as encoder + DenseDepth-style U-Net decoder, output at half
resolution.

Encoder: the YOLOv8 backbone (layers 0-9: Conv, C2f, SPPF), written here from the published
architecture (no ultralytics code or weights). The seed's skip sizes (16 @ 1/2, 32 @ 1/4,
64 @ 1/8, 128 @ 1/16, 256 @ 1/32 after SPPF) are those of the nano scale (width 0.25, depth
0.33): Conv 16 s2 | Conv 32 s2, C2f 32 x1 | Conv 64 s2, C2f 64 x2 | Conv 128 s2, C2f 128 x2 |
Conv 256 s2, C2f 256 x1, SPPF 256. Skips are the last layer output at each stride.

Decoder (seed 001 Table 2): 1x1 conv 256 -> 256 (bias), four up blocks (bilinear x2, concat
skip, 2 x [3x3 conv (bias) + LeakyReLU 0.2]) to 128, 64, 32, 16 channels, final 3x3 conv to
one channel at 1/2 resolution (+ :class:`~.layers.PositiveDepth`).

Parameter count. This backbone has 1,272,656 parameters (with the YOLOv8 neck and detect
head it gives the 3,157,200 of yolov8n, so the blocks are right). Seed 001 Table 1 reports
2,142,192 for its "encoder backbone". No width/depth scale whose channels match the seed's
skips comes near that, nor does any prefix of the seg model (backbone + whole neck:
2,259,536, +5.5 %). The whole network here (backbone + the seed's decoder, 849,777)
has 2,122,433 parameters, 0.9 % below 2,142,192, and the seed's own sizes agree with that
reading: Table 1 gives the YOLO backbone 5 MB (= 1.27 M float32 parameters), the conclusion
a "9 MB encoder" (= 2.14 M). So the seed's figure counts the whole encoder-decoder network;
the test compares it with this network's total. Nothing is pretrained (the seed fine-tunes
COCO weights; none are available offline).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import layers
from ._registry import register_model

# YOLOv8 scales: (depth multiple, width multiple, max channels)
SCALES = {'n': (0.33, 0.25, 1024), 's': (0.33, 0.50, 1024), 'm': (0.67, 0.75, 768),
          'l': (1.00, 1.00, 512), 'x': (1.00, 1.25, 512)}


def conv(cin: int, cout: int, k: int = 1, stride: int = 1) -> layers.ConvBNAct:
    """YOLO 'Conv': k x k conv (no bias) + BN + SiLU."""
    return layers.ConvBNAct(cin, cout, k, stride, act='silu')


class YoloBottleneck(nn.Module):
    """Two 3x3 Convs on c channels, plus the input if ``shortcut``."""

    def __init__(self, c: int, shortcut: bool):
        super().__init__()
        self.body = nn.Sequential(conv(c, c, 3), conv(c, c, 3))
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.shortcut else self.body(x)


class C2f(nn.Module):
    """YOLOv8 C2f: 1x1 Conv to 2c (c = cout / 2), split in halves, n bottlenecks chained on the
    second half, concatenation of both halves and every bottleneck output ((2 + n) c
    channels), 1x1 Conv to cout. (B, cin, H, W) -> (B, cout, H, W)."""

    def __init__(self, cin: int, cout: int, n: int, shortcut: bool):
        super().__init__()
        self.c = cout // 2
        self.cv1 = conv(cin, 2 * self.c)
        self.m = nn.ModuleList(YoloBottleneck(self.c, shortcut) for _ in range(n))
        self.cv2 = conv((2 + n) * self.c, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).split(self.c, dim=1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): 1x1 Conv to cin/2, three chained k x k stride-1 max-pools,
    concatenation of the four maps, 1x1 Conv to cout. Keeps H, W."""

    def __init__(self, cin: int, cout: int, k: int = 5):
        super().__init__()
        self.cv1 = conv(cin, cin // 2)
        self.pool = nn.MaxPool2d(k, 1, k // 2)
        self.cv2 = conv(cin // 2 * 4, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, dim=1))


def yolov8_backbone(scale: str = 'n') -> layers.StagedEncoder:
    """YOLOv8 backbone (layers 0-9) at ``scale``; stage outputs at strides 2 .. 32 (SPPF last)."""
    if scale not in SCALES:
        raise ValueError(f'unknown YOLOv8 scale {scale!r}; known: {", ".join(SCALES)}')
    depth, width, max_channels = SCALES[scale]
    w = [int(math.ceil(min(c, max_channels) * width / 8) * 8) for c in (64, 128, 256, 512, 1024)]
    n = [max(round(k * depth), 1) for k in (3, 6, 6, 3)]
    stages: list[nn.Module] = [conv(3, w[0], 3, 2)]
    for i in range(4):
        blocks = [conv(w[i], w[i + 1], 3, 2), C2f(w[i + 1], w[i + 1], n[i], shortcut=True)]
        if i == 3:
            blocks.append(SPPF(w[4], w[4]))
        stages.append(nn.Sequential(*blocks))
    return layers.StagedEncoder(stages, tuple(w))


@dataclass(frozen=True)
class YoloUNetConfig:
    """scale: YOLOv8 scale of the backbone ('n' matches seed 001); decoder widths equal the
    skip widths (128, 64, 32, 16 for 'n'), as in the seed."""
    scale: str = 'n'


class YoloUNet(layers.MonoDepthNet):
    """Image (B, 3, H, W) in [0, 1] -> depth (B, 1, H/2, W/2) in metres; H, W multiples of 32.
    Feature for distillation: the last up block (B, 16, H/2, W/2) for scale 'n'."""

    multiple_of = 32
    output_scale = 0.5

    def __init__(self, config: YoloUNetConfig):
        super().__init__()
        self.config = config
        self.normalize = layers.Normalize()
        self.encoder = yolov8_backbone(config.scale)
        skips = self.encoder.channels[-2::-1]
        self.decoder = layers.UNetDecoder(self.encoder.channels[-1], skips, skips, act='leaky_relu', norm=False,
                                          mode='bilinear', input_width=self.encoder.channels[-1])
        self.head = layers.DepthHead(skips[-1], 3)
        layers.init_weights(self)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(x)
        f = self.encoder(self.normalize(x))
        y = self.decoder(f[-1], f[-2::-1])
        return self.head(y), y


@register_model('yolo_unet', kind='mono')
def yolo_unet(**options: Any) -> YoloUNet:
    """Seed 001's YOLOv8n-backbone U-Net (half-resolution output); options: scale."""
    return YoloUNet(dataclasses.replace(YoloUNetConfig(), **options))
