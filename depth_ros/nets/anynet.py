"""AnyNet stereo network with SPN refinement (Wang et al., ICRA 2019), an anytime network.

Stages (every one a complete disparity estimate at full resolution, in px):

1. full cost volume at 1/16 over ``max_disparity / 16`` disparities, 3D net, soft-argmin;
2. residual cost volume at 1/8 (+-2 px around the upsampled previous estimate, by warping
   the right features), 3D net, soft-argmin residual added to the previous estimate;
3. the same at 1/4;
4. spatial propagation (SPN) of the stage-3 estimate at 1/4, guided by the left image.

Unlike the original code, the residual volume's channel s holds candidate disparity
``d + s`` for regressed residual ``s`` (the original searched ``d - s``), all grids are built
on the input's device, and the SPN recurrence is plain torch (scripted for ONNX export).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._registry import register_model
from .layers import Normalize

SPN_CHANNELS = (0, 1, 2, 4, 8)
GATE_EPS = 1e-8


@dataclass(frozen=True)
class AnyNetConfig:
    """AnyNet sizes; the defaults are the original's (34,629 parameters without SPN).

    ``stages`` (None: 4 with SPN, else 3) is the default number of stages run;
    ``residual_range`` is the +- search range in px of stages 2 and 3 at their resolution
    (the original's ``maxdisplist`` entries 3); ``growth_rate`` scales ``channels_3d`` per stage.
    """
    max_disparity: int = 192
    spn_channels: int = 8
    stages: int | None = None
    init_channels: int = 1
    nblocks: int = 2
    layers_3d: int = 4
    channels_3d: int = 4
    growth_rate: tuple[int, int, int] = (4, 1, 1)
    residual_range: tuple[int, int] = (2, 2)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'growth_rate', tuple(self.growth_rate))
        object.__setattr__(self, 'residual_range', tuple(self.residual_range))
        if self.spn_channels not in SPN_CHANNELS:
            raise ValueError(f'spn_channels must be one of {SPN_CHANNELS}, not {self.spn_channels}')
        if self.max_disparity < 16 or self.max_disparity % 16:
            raise ValueError(f'max_disparity must be a positive multiple of 16, not {self.max_disparity}')
        if len(self.growth_rate) != 3 or len(self.residual_range) != 2:
            raise ValueError('growth_rate needs 3 entries and residual_range 2')
        if self.stages is None:
            object.__setattr__(self, 'stages', 4 if self.spn_channels else 3)

    @property
    def max_stages(self) -> int:
        """4 with an SPN, else 3."""
        return 4 if self.spn_channels else 3


def preact(cin: int, cout: int, stride: int = 1, dims: int = 2) -> nn.Sequential:
    """Pre-activation block BN-ReLU-conv (3x3 or 3x3x3, no bias) for 2D or 3D tensors."""
    bn, conv = (nn.BatchNorm2d, nn.Conv2d) if dims == 2 else (nn.BatchNorm3d, nn.Conv3d)
    return nn.Sequential(bn(cin), nn.ReLU(inplace=True), conv(cin, cout, 3, stride, 1, bias=False))


def upsample(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) by ``factor`` (half-pixel centres, as ONNX Resize)."""
    return F.interpolate(x, scale_factor=factor, mode='bilinear', align_corners=False)


class FeatureUNet(nn.Module):
    """Shared small U-Net: (B, 3, H, W) -> [1/16 (8c ch), 1/8 (4c ch), 1/4 (2c ch)], c = init_channels."""

    def __init__(self, c: int = 1, nblocks: int = 2):
        super().__init__()

        def down(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.MaxPool2d(2), *[preact(cin if i == 0 else cout, cout) for i in range(nblocks)])

        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 1, 1), preact(c, c, stride=2))
        self.down4, self.down8, self.down16 = down(c, 2 * c), down(2 * c, 4 * c), down(4 * c, 8 * c)
        self.up8 = nn.Sequential(preact(12 * c, 4 * c), preact(4 * c, 4 * c))
        self.up4 = nn.Sequential(preact(6 * c, 2 * c), preact(2 * c, 2 * c))

    def forward(self, x: torch.Tensor, levels: int = 3) -> list[torch.Tensor]:
        """The first ``levels`` (1-3) feature maps, coarsest first; skips unused decoder levels."""
        f4 = self.down4(self.stem(x))
        f8 = self.down8(f4)
        feats = [self.down16(f8)]
        if levels > 1:
            feats.append(self.up8(torch.cat([f8, upsample(feats[-1], 2.0)], 1)))
        if levels > 2:
            feats.append(self.up4(torch.cat([f4, upsample(feats[-1], 2.0)], 1)))
        return feats


def net3d(channels: int, layers: int) -> nn.Sequential:
    """Cost-volume regularizer (B, 1, D, h, w) -> (B, 1, D, h, w): layers + 2 pre-activation Conv3d."""
    return nn.Sequential(preact(1, channels, dims=3), *[preact(channels, channels, dims=3) for _ in range(layers)],
                         preact(channels, 1, dims=3))


def full_cost_volume(left: torch.Tensor, right: torch.Tensor, disparities: int) -> torch.Tensor:
    """L1 matching cost (B, D, h, w) of left features (B, C, h, w) at x against right at x - d,
    d = 0 .. D-1 px; right features left of the image count as zero."""
    padded = F.pad(right, (disparities - 1, 0))
    costs = [(left - padded[..., disparities - 1 - d: -d if d else None]).abs().sum(1)
             for d in range(disparities)]
    return torch.stack(costs, 1)


def warp_right(right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """Sample right features (B, C, h, w) at (x - disparity, y), bilinear, zero outside.
    ``disparity``: (B, S, h, w) px at this resolution. Returns (B, C, S, h, w)."""
    b, s, h, w = disparity.shape
    xs = torch.arange(w, device=right.device, dtype=right.dtype).view(1, 1, 1, -1)
    ys = torch.arange(h, device=right.device, dtype=right.dtype).view(1, 1, -1, 1)
    gx = (2 * (xs - disparity) + 1) / w - 1
    gy = ((2 * ys + 1) / h - 1).expand_as(gx)
    grid = torch.stack([gx, gy], -1).flatten(1, 2)  # (B, S*h, w, 2)
    warped = F.grid_sample(right, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    return warped.unflatten(2, (s, h))


def residual_cost_volume(left: torch.Tensor, right: torch.Tensor, disparity: torch.Tensor,
                         radius: int) -> torch.Tensor:
    """L1 cost (B, 2r+1, h, w) of left features at x against right at x - (disparity + s),
    s = -r .. r px; ``disparity`` (B, 1, h, w) px at this resolution."""
    shifts = torch.arange(-radius, radius + 1, device=left.device, dtype=left.dtype).view(1, -1, 1, 1)
    return (left.unsqueeze(2) - warp_right(right, disparity + shifts)).abs().sum(1)


def soft_argmin(cost: torch.Tensor, first: int) -> torch.Tensor:
    """Expected disparity (B, 1, h, w) under softmax(-cost) over (B, D, h, w) candidates first .. first+D-1."""
    values = torch.arange(first, first + cost.shape[1], device=cost.device, dtype=cost.dtype)
    return (F.softmax(-cost, 1) * values.view(1, -1, 1, 1)).sum(1, keepdim=True)


def _step(h: torch.Tensor, x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor) -> torch.Tensor:
    """One column of the recurrence: x + g1 h[row - 1] + g2 h + g3 h[row + 1]; all (N, R)."""
    return x + g1 * F.pad(h[:, :-1], (1, 0)) + g2 * h + g3 * F.pad(h[:, 1:], (0, 1))


def _scan(x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor) -> torch.Tensor:
    """h[t] = x[t] + g1[t] h[t-1] shifted down + g2[t] h[t-1] + g3[t] h[t-1] shifted up.
    All (T, N, R): scan axis first, rows last; x is already weighted by 1 - g1 - g2 - g3."""
    h = x[0]
    outs: list[torch.Tensor] = [h]
    for t in range(1, x.size(0)):
        h = _step(h, x[t], g1[t], g2[t], g3[t])
        outs.append(h)
    return torch.stack(outs, 0)


def _scan_eager(x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor) -> torch.Tensor:
    """_scan for training: the columns are split once (unbind), so backward stacks their
    gradients once instead of filling a full-size zero tensor per column (quadratic in W)."""
    xs, a, b, c = x.unbind(0), g1.unbind(0), g2.unbind(0), g3.unbind(0)
    outs = [xs[0]]
    for t in range(1, len(xs)):
        outs.append(_step(outs[-1], xs[t], a[t], b[t], c[t]))
    return torch.stack(outs, 0)


@functools.cache
def _scripted_scan() -> torch.jit.ScriptFunction:
    """_scan as TorchScript, so tracing (ONNX export) records a Loop over the width, not W copies."""
    return torch.jit.script(_scan)


def propagate(x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor) -> torch.Tensor:
    """Left-to-right spatial propagation of x (B, C, H, W) with gates (B, C, H, W), as the
    original GateRecurrent2dnoind(horizontal, not reversed):

        h[i, t] = (1 - g1 - g2 - g3) x[i, t] + g1 h[i-1, t-1] + g2 h[i, t-1] + g3 h[i+1, t-1]

    with the gates at (i, t); a gate whose neighbour lies outside the image is zero.
    """
    g1 = F.pad(g1[:, :, 1:, 1:], (1, 0, 1, 0))
    g2 = F.pad(g2[:, :, :, 1:], (1, 0))
    g3 = F.pad(g3[:, :, :-1, 1:], (1, 0, 0, 1))
    b, c = x.shape[:2]

    def scan_first(t: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (W, B*C, H)
        return t.permute(3, 0, 1, 2).flatten(1, 2)

    scan = _scripted_scan() if torch.jit.is_tracing() else _scan_eager
    h = scan(scan_first((1 - g1 - g2 - g3) * x), scan_first(g1), scan_first(g2), scan_first(g3))
    return h.unflatten(1, (b, c)).permute(1, 2, 3, 0)


class SPNRefine(nn.Module):
    """SPN refinement of a disparity (B, 1, h, w) guided by an image (B, 3, h, w): 126C^2 + 72C
    parameters (guidance 3->2C->2C->2C->3C, lift 1->C, project C->1; 3x3, no bias)."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.guidance = nn.Sequential(
            nn.Conv2d(3, 2 * c, 3, 1, 1, bias=False), nn.ReLU(inplace=True),
            nn.Conv2d(2 * c, 2 * c, 3, 1, 1, bias=False), nn.ReLU(inplace=True),
            nn.Conv2d(2 * c, 2 * c, 3, 1, 1, bias=False), nn.ReLU(inplace=True),
            nn.Conv2d(2 * c, 3 * c, 3, 1, 1, bias=False))
        self.lift = nn.Conv2d(1, c, 3, 1, 1, bias=False)
        self.project = nn.Conv2d(c, 1, 3, 1, 1, bias=False)

    def forward(self, disparity: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        g1, g2, g3 = self.guidance(image).chunk(3, 1)
        total = g1.abs() + g2.abs() + g3.abs() + GATE_EPS
        return self.project(propagate(self.lift(disparity), g1 / total, g2 / total, g3 / total))

    def init_as_smoothing(self) -> None:
        """Lift copies the disparity into every channel and project averages them, so an
        untrained SPN returns a propagated (smoothed) stage-3 estimate instead of noise."""
        for conv, value in ((self.lift, 1.0), (self.project, 1.0 / self.lift.out_channels)):
            nn.init.zeros_(conv.weight)
            with torch.no_grad():
                conv.weight[:, :, 1, 1] = value


def _check_inputs(left: torch.Tensor, right: torch.Tensor) -> None:
    """Raise ValueError unless left and right are both (B, 3, H, W) with H, W multiples of 16."""
    if left.dim() != 4 or left.shape[1] != 3 or left.shape != right.shape:
        raise ValueError(f'left and right must both be (B, 3, H, W), got {tuple(left.shape)} and {tuple(right.shape)}')
    if left.shape[-2] % 16 or left.shape[-1] % 16:
        raise ValueError(f'AnyNet needs H and W multiples of 16, got {left.shape[-2]}x{left.shape[-1]}')


class AnyNet(nn.Module):
    """(left, right) RGB in [0, 1], (B, 3, H, W), H and W multiples of 16 -> disparity of the
    left image in px, (B, 1, H, W). Eval: the last of ``stages`` stages (only those run);
    training: the list of all ``stages`` outputs, stage 1 first."""

    multiple_of = 16
    output_scale = 1.0
    input_size = (256, 512)

    def __init__(self, config: AnyNetConfig | None = None):
        super().__init__()
        self.config = cfg = config or AnyNetConfig()
        self.normalize = Normalize()
        self.features = FeatureUNet(cfg.init_channels, cfg.nblocks)
        self.nets3d = nn.ModuleList(net3d(cfg.channels_3d * g, cfg.layers_3d) for g in cfg.growth_rate)
        self.spn = SPNRefine(cfg.spn_channels) if cfg.spn_channels else None
        self.stages = cfg.stages
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.spn is not None:
            self.spn.init_as_smoothing()

    @property
    def max_stages(self) -> int:
        """Number of stages this network has (4 with an SPN, else 3)."""
        return self.config.max_stages

    def load_narrowed(self, state: dict[str, torch.Tensor]) -> None:
        """Start from the weights of a wider or deeper AnyNet (e.g. a shipped one, to fine-tune a
        cheaper configuration): tensors of the same name, each regularizer's first blocks and its
        last one (the output layer stays the output layer), the leading channels where this
        network has fewer. Raises ValueError when a tensor has no counterpart that large."""
        last = {k: max(int(n.split('.')[2]) for n in state if n.startswith(f'nets3d.{k}.'))
                for k in range(len(self.nets3d))}
        loaded = {}
        for name, target in self.state_dict().items():
            parts = name.split('.')
            if parts[0] == 'nets3d' and int(parts[2]) == len(self.nets3d[int(parts[1])]) - 1:
                parts[2] = str(last[int(parts[1])])
            source = state.get('.'.join(parts))
            if source is None or source.dim() != target.dim() or any(
                    n > m for n, m in zip(target.shape, source.shape)):
                raise ValueError(f'{name} {tuple(target.shape)}: no such or larger tensor in the weights '
                                 f'({None if source is None else tuple(source.shape)})')
            loaded[name] = source[tuple(slice(0, n) for n in target.shape)]
        self.load_state_dict(loaded)

    @property
    def stages(self) -> int:
        """Stages run by forward (1 .. max_stages); settable after construction."""
        return self._stages

    @stages.setter
    def stages(self, value: int) -> None:
        if not 1 <= int(value) <= self.max_stages:
            raise ValueError(f'stages must be in 1..{self.max_stages}, not {value}')
        self._stages = int(value)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if not torch.jit.is_tracing():  # a traced graph must not bake in the tracing size
            _check_inputs(left, right)
        preds = self.all_stages(left, right)
        return preds if self.training else preds[-1]

    def all_stages(self, left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        """Disparities (B, 1, H, W) px of stages 1 .. ``stages`` for RGB pairs (B, 3, H, W) in 0..1, in
        either mode (a distillation teacher's targets)."""
        return self._stage_outputs(self.normalize(left), self.normalize(right))

    def _stage_outputs(self, left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        """Full-resolution disparities (B, 1, H, W) px of stages 1 .. self.stages (normalized inputs)."""
        cfg = self.config
        feats = self.features(torch.cat([left, right], 0), levels=min(self.stages, 3))
        preds: list[torch.Tensor] = []
        for k, feat in enumerate(feats):
            scale = 16 >> k  # 16, 8, 4
            feat_l, feat_r = feat.chunk(2, 0)
            if k == 0:
                cost = full_cost_volume(feat_l, feat_r, cfg.max_disparity // 16)
                first = 0
            else:
                radius = cfg.residual_range[k - 1]
                cost = residual_cost_volume(feat_l, feat_r, upsample(preds[-1], 1 / scale) / scale, radius)
                first = -radius
            cost = self.nets3d[k](cost.unsqueeze(1)).squeeze(1)
            disparity = upsample(soft_argmin(cost, first) * scale, float(scale))
            preds.append(disparity if k == 0 else preds[-1] + disparity)
        if self.stages == 4:
            refined = self.spn(upsample(preds[-1], 0.25), upsample(left, 0.25))
            preds.append(upsample(refined, 4.0))
        return preds


@register_model('anynet', kind='stereo')
def anynet(**options) -> AnyNet:
    """AnyNet with ``AnyNetConfig(**options)``, e.g. ``spn_channels=0`` for the 3-stage network."""
    return AnyNet(AnyNetConfig(**options))

