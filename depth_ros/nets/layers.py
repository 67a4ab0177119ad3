"""Building blocks shared by the network families in ``depth_ros.nets``.

All blocks take NCHW float tensors. Nothing here downloads weights: there is no ImageNet
pretraining in this project, every network starts from :func:`init_weights`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_activation(name: str) -> nn.Module:
    """'relu', 'relu6', 'leaky_relu' (slope 0.2), 'swish'/'silu', or 'identity'."""
    acts = {
        'relu': lambda: nn.ReLU(inplace=True),
        'relu6': lambda: nn.ReLU6(inplace=True),
        'leaky_relu': lambda: nn.LeakyReLU(0.2, inplace=True),
        'swish': lambda: nn.SiLU(inplace=True),
        'silu': lambda: nn.SiLU(inplace=True),
        'identity': nn.Identity,
    }
    if name not in acts:
        raise ValueError(f'unknown activation {name!r}; known: {", ".join(acts)}')
    return acts[name]()


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), never
    more than 10 % below ``value`` (the MobileNet rule for channel counts)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def upsample2x(x: torch.Tensor, mode: str = 'nearest') -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W) by 'nearest' or 'bilinear' (half-pixel centres)."""
    if mode == 'nearest':
        return F.interpolate(x, scale_factor=2.0, mode='nearest')
    return F.interpolate(x, scale_factor=2.0, mode=mode, align_corners=False)


def init_weights(module: nn.Module) -> None:
    """From-scratch init (the project ships no pretrained encoders): He normal (fan-in)
    convolutions, zero biases, unit BatchNorm; the last BN of every ResNet residual branch
    starts at zero (each block starts as its shortcut) and :class:`DepthHead` convs start
    small, so the first predictions are near 0.69 m instead of saturating the softplus."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode='fan_in', nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, ResidualBlock):
            nn.init.zeros_(m.body[-1].weight)
        elif isinstance(m, DepthHead):
            nn.init.normal_(m[0].weight, std=0.01)


class Normalize(nn.Module):
    """RGB in [0, 1] (B, 3, H, W) -> (x - mean) / std; baked into every graph so the
    runtime feeds plain [0, 1] RGB."""

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD):
        super().__init__()
        self.register_buffer('mean', torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer('inv_std', 1.0 / torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


class PositiveDepth(nn.Module):
    """Logits (B, 1, h, w) -> depth in metres, softplus(x) + ``min_depth`` (> 0 everywhere,
    smooth, linear for large values)."""

    def __init__(self, min_depth: float = 1e-3):
        super().__init__()
        self.min_depth = min_depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x) + self.min_depth


class DepthHead(nn.Sequential):
    """Prediction layer: k x k conv (with bias) cin -> 1 + :class:`PositiveDepth`;
    (B, cin, h, w) -> depth (B, 1, h, w) in metres."""

    def __init__(self, cin: int, k: int = 1):
        super().__init__(nn.Conv2d(cin, 1, k, padding=k // 2), PositiveDepth())


class ConvBNAct(nn.Sequential):
    """k x k conv + BatchNorm + activation; 'same' padding for odd k. ``norm=False`` drops the
    BatchNorm; the conv has a bias if ``bias`` (default: only without BatchNorm)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 act: str = 'relu', dilation: int = 1, *, norm: bool = True, bias: bool | None = None):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, dilation * (k // 2), dilation=dilation,
                                             groups=groups, bias=not norm if bias is None else bias)]
        if norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(make_activation(act))
        super().__init__(*layers)


class DepthwiseSeparable(nn.Sequential):
    """MobileNet V1 block: k x k depthwise conv-BN-act (stride ``stride``) + 1x1 pointwise
    conv-BN-act. (B, cin, H, W) -> (B, cout, H/stride, W/stride)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, act: str = 'relu6'):
        super().__init__(ConvBNAct(cin, cin, k, stride, groups=cin, act=act), ConvBNAct(cin, cout, 1, act=act))


class InvertedResidual(nn.Module):
    """MobileNet V2 bottleneck: 1x1 expand to ``hidden`` + BN + act (skipped when hidden == cin,
    except in up-blocks), k x k depthwise (stride ``stride``) + BN + act, 1x1 linear
    projection + BN, residual when shapes allow. With ``upsample`` a nearest x2 upsampling
    sits between expansion and depthwise conv: the FBNet-style decoder up-block
    (B, cin, H, W) -> (B, cout, 2H, 2W).

    ``hidden`` is the channel count that structured pruning shrinks (see mbv2_fbnet).
    """

    def __init__(self, cin: int, cout: int, hidden: int, stride: int = 1, k: int = 3,
                 act: str = 'relu6', upsample: bool = False):
        super().__init__()
        if hidden != cin or upsample:
            self.expand = ConvBNAct(cin, hidden, 1, act=act)
        self.upsample = upsample
        self.depthwise = ConvBNAct(hidden, hidden, k, stride, groups=hidden, act=act)
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout and not upsample

    @property
    def hidden(self) -> int:
        """Width of the expanded (depthwise) layer."""
        return self.depthwise[0].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if hasattr(self, 'expand') else x
        if self.upsample:
            y = upsample2x(y, 'nearest')
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class StagedEncoder(nn.Module):
    """Encoder made of five stages ending at strides 2, 4, 8, 16, 32; ``forward`` returns the
    output of each stage, [(B, channels[i], H / 2^(i+1), W / 2^(i+1)) for i in 0..4]."""

    channels: tuple[int, ...]

    def __init__(self, stages: list[nn.Module], channels: tuple[int, ...]):
        super().__init__()
        if len(stages) != 5 or len(channels) != 5:
            raise ValueError('a staged encoder has exactly five stages (strides 2 .. 32)')
        self.stages = nn.ModuleList(stages)
        self.channels = tuple(channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def mobilenet_v1(width: float = 1.0, act: str = 'relu6') -> StagedEncoder:
    """MobileNet V1 feature extractor (no pooling/classifier): 3x3 conv stride 2 + 13
    depthwise-separable blocks; stage outputs 64, 128, 256, 512, 1024 channels (x ``width``)."""
    c = [make_divisible(v * width) for v in (32, 64, 128, 256, 512, 1024)]
    plan = [  # (stride of the first block, out channels, blocks) per stage after the stem
        [(1, c[1])],
        [(2, c[2]), (1, c[2])],
        [(2, c[3]), (1, c[3])],
        [(2, c[4])] + [(1, c[4])] * 5,
        [(2, c[5]), (1, c[5])],
    ]
    stages, cin = [], c[0]
    for i, blocks in enumerate(plan):
        layers: list[nn.Module] = [ConvBNAct(3, c[0], 3, 2, act=act)] if i == 0 else []
        for stride, cout in blocks:
            layers.append(DepthwiseSeparable(cin, cout, 3, stride, act))
            cin = cout
        stages.append(nn.Sequential(*layers))
    return StagedEncoder(stages, (c[1], c[2], c[3], c[4], c[5]))


# MobileNet V2 (Sandler et al. 2018, seed 002 Table 1) without its last 1x1 conv:
# (expansion t, out channels c, repeats n, stride s) per row, grouped by output stride.
MBV2_SETTINGS = (
    ((1, 16, 1, 1),),
    ((6, 24, 2, 2),),
    ((6, 32, 3, 2),),
    ((6, 64, 4, 2), (6, 96, 3, 1)),
    ((6, 160, 3, 2), (6, 320, 1, 1)),
)


def mobilenet_v2(hidden_ratio: float = 1.0, act: str = 'relu6') -> StagedEncoder:
    """MobileNet V2 feature extractor without the final 1x1 conv to 1280: stage outputs
    16, 24, 32, 96, 320 channels. ``hidden_ratio`` < 1 shrinks the expanded width of every
    block with t > 1 (the structured-pruning target), hidden = make_divisible(cin * t * ratio)."""
    stages, cin = [], 32
    for i, rows in enumerate(MBV2_SETTINGS):
        layers: list[nn.Module] = [ConvBNAct(3, cin, 3, 2, act=act)] if i == 0 else []
        for t, cout, n, s in rows:
            for j in range(n):
                hidden = cin if t == 1 else make_divisible(cin * t * hidden_ratio)
                layers.append(InvertedResidual(cin, cout, hidden, s if j == 0 else 1, 3, act))
                cin = cout
        stages.append(nn.Sequential(*layers))
    return StagedEncoder(stages, tuple(rows[-1][1] for rows in MBV2_SETTINGS))


class ResidualBlock(nn.Module):
    """relu(body(x) + shortcut(x)); the shortcut is a 1x1 conv-BN projection when the shape
    changes. Subclasses build ``body`` and set ``expansion`` (out channels / planes)."""
    expansion = 1

    def __init__(self, body: nn.Sequential, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = body
        if stride == 1 and cin == cout:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class BasicBlock(ResidualBlock):
    """ResNet basic block: 3x3 conv-BN-ReLU, 3x3 conv-BN. (B, cin, H, W) -> (B, planes, H/s, W/s)."""

    def __init__(self, cin: int, planes: int, stride: int = 1):
        body = nn.Sequential(ConvBNAct(cin, planes, 3, stride), nn.Conv2d(planes, planes, 3, 1, 1, bias=False),
                             nn.BatchNorm2d(planes))
        super().__init__(body, cin, planes, stride)


class Bottleneck(ResidualBlock):
    """ResNet bottleneck (v1.5, stride on the 3x3): 1x1 reduce, 3x3, 1x1 expand x4, each with
    BN. (B, cin, H, W) -> (B, 4 * planes, H/s, W/s)."""
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        body = nn.Sequential(ConvBNAct(cin, planes, 1), ConvBNAct(planes, planes, 3, stride),
                             nn.Conv2d(planes, 4 * planes, 1, bias=False), nn.BatchNorm2d(4 * planes))
        super().__init__(body, cin, 4 * planes, stride)


RESNET_LAYOUTS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}


def resnet(depth: int) -> StagedEncoder:
    """ResNet-18/34/50 feature extractor (no pooling/classifier): 7x7 stem (1/2, 64 ch), then
    max-pool + layer1 (1/4) and layer2..4 (1/8 .. 1/32); channels (64, 64, 128, 256, 512)
    for 18/34, (64, 256, 512, 1024, 2048) for 50. The last BN of every residual branch starts
    at zero, so each block starts as its shortcut (stable from-scratch training)."""
    if depth not in RESNET_LAYOUTS:
        raise ValueError(f'ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, not {depth}')
    block, counts = RESNET_LAYOUTS[depth]
    stages: list[nn.Module] = [ConvBNAct(3, 64, 7, 2)]
    cin = 64
    for i, (n, planes) in enumerate(zip(counts, (64, 128, 256, 512))):
        blocks: list[nn.Module] = [nn.MaxPool2d(3, 2, 1)] if i == 0 else []
        for j in range(n):
            blocks.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
            cin = planes * block.expansion
        stages.append(nn.Sequential(*blocks))
    encoder = StagedEncoder(stages, (64,) + tuple(p * block.expansion for p in (64, 128, 256, 512)))
    init_weights(encoder)
    return encoder


class UpConcat(nn.Module):
    """U-Net up-block: x2 upsampling of x (B, cin, h, w), concatenation with the skip
    (B, cskip, 2h, 2w), then two 3x3 convs to ``cout`` (with BN if ``norm``; conv bias if
    ``bias``, default: only without BN) each followed by ``act``."""

    def __init__(self, cin: int, cskip: int, cout: int, act: str = 'relu', norm: bool = True,
                 bias: bool | None = None, mode: str = 'bilinear'):
        super().__init__()
        self.mode = mode
        self.conv = nn.Sequential(ConvBNAct(cin + cskip, cout, 3, act=act, norm=norm, bias=bias),
                                  ConvBNAct(cout, cout, 3, act=act, norm=norm, bias=bias))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([upsample2x(x, self.mode), skip], dim=1))


class UNetDecoder(nn.Module):
    """Chain of :class:`UpConcat` blocks: the deepest feature (B, cin, h, w) is combined with
    ``len(widths)`` skips, deepest first (skip i is 2^(i+1) times larger than the input), and
    returns (B, widths[-1], 2^n h, 2^n w). ``input_width`` adds a 1x1 conv (with bias, no
    activation) cin -> input_width on the input first (the DenseDepth decoder)."""

    def __init__(self, cin: int, skip_channels: tuple[int, ...], widths: tuple[int, ...], act: str = 'relu',
                 norm: bool = True, bias: bool | None = None, mode: str = 'bilinear', input_width: int | None = None):
        super().__init__()
        if len(skip_channels) != len(widths):
            raise ValueError(f'{len(skip_channels)} skips but {len(widths)} decoder widths')
        self.input_conv = nn.Identity() if input_width is None else nn.Conv2d(cin, input_width, 1)
        ins = (cin if input_width is None else input_width,) + tuple(widths[:-1])
        self.blocks = nn.ModuleList(UpConcat(i, s, o, act, norm, bias, mode)
                                    for i, s, o in zip(ins, skip_channels, widths))

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.input_conv(x)
        for block, skip in zip(self.blocks, skips):
            x = block(x, skip)
        return x


class MonoDepthNet(nn.Module):
    """Base of the monocular networks: ``forward(image)`` is the first element of
    ``forward_with_features``. Subclasses set ``multiple_of`` (input H and W must be
    multiples of it) and ``output_scale`` (output size / input size), and implement
    ``forward_with_features(x) -> (depth, feature)``: depth (B, 1, H*s, W*s) in metres
    (a list, final first, for networks with auxiliary heads in training mode) and the
    penultimate decoder feature map (B, C, h', w') for pairwise distillation."""

    multiple_of: int = 32
    output_scale: float = 1.0

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError unless x is (B, 3, H, W) with H, W multiples of ``multiple_of``
        (not checked while tracing for ONNX export, which checks the size itself)."""
        if torch.jit.is_tracing():
            return
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'expected an RGB batch (B, 3, H, W), got shape {tuple(x.shape)}')
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if h % self.multiple_of or w % self.multiple_of:
            raise ValueError(f'{type(self).__name__} needs H and W to be multiples of {self.multiple_of}, '
                             f'got {h}x{w}; resize or pad the image')

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.forward_with_features(x)[0]


class UNetDepthNet(MonoDepthNet):
    """A MonoDepthNet made of ``normalize``, an ``encoder`` returning its feature maps fine to
    coarse, a U-Net ``decoder`` (coarsest map + skips) and a ``head`` at half resolution that is
    upsampled 2x; the feature is the decoder's output (the subclass builds the four parts)."""

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(x)
        f = self.encoder(self.normalize(x))
        y = self.decoder(f[-1], f[-2::-1])
        return upsample2x(self.head(y), 'bilinear'), y
