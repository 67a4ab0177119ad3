"""Self-supervised stereo losses: no ground truth, only the rectified pair (Monodepth-style).

The left view is rebuilt from the right one through the predicted left disparity (a left pixel
x sees the right image at x - d); where that falls outside the right image nothing is compared.
``photometric``: 0.85 (1 - SSIM) / 2 + 0.15 L1 (3x3 box SSIM on [0, 1] RGB);
``smoothness``: edge-aware, on the disparity over its mean; ``lr_consistency``: the left
disparity against the right disparity seen from the left; ``sparse``: smooth L1 against
sparse labels (e.g. SGBM's confident pixels, NaN elsewhere). Disparities are (B, 1, H, W) px
at the images' resolution, images (B, 3, H, W) in [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from depth_ros.metrics import ssim_from_moments

from .masks import masked_mean
from .structure import edge_aware_smoothness

SSIM_ALPHA = 0.85


def sample_at(image: Tensor, disparity: Tensor) -> Tensor:
    """``image`` (B, C, H, W) sampled at (x - disparity, y), bilinear, borders replicated."""
    b, _, h, w = disparity.shape
    xs = torch.arange(w, device=image.device, dtype=image.dtype).view(1, 1, 1, -1)
    ys = torch.arange(h, device=image.device, dtype=image.dtype).view(1, 1, -1, 1)
    gx = (2 * (xs - disparity) + 1) / w - 1
    gy = ((2 * ys + 1) / h - 1).expand_as(gx)
    grid = torch.stack([gx[:, 0], gy[:, 0]], -1)
    return F.grid_sample(image, grid, mode='bilinear', padding_mode='border', align_corners=False)


def in_view(disparity: Tensor) -> Tensor:
    """Bool (B, 1, H, W): left pixels whose match x - d lies inside the right image."""
    xs = torch.arange(disparity.shape[-1], device=disparity.device, dtype=disparity.dtype).view(1, 1, 1, -1)
    return (xs - disparity >= 0) & (disparity >= 0)


def ssim_map(x: Tensor, y: Tensor) -> Tensor:
    """Per-pixel SSIM (B, C, H, W) over 3x3 windows (reflect padding), C1 = 0.01^2, C2 = 0.03^2."""
    x, y = F.pad(x, (1, 1, 1, 1), mode='reflect'), F.pad(y, (1, 1, 1, 1), mode='reflect')
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    var_x = F.avg_pool2d(x * x, 3, 1) - mu_x ** 2
    var_y = F.avg_pool2d(y * y, 3, 1) - mu_y ** 2
    cov = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    return ssim_from_moments(mu_x, mu_y, var_x, var_y, cov, 0.01 ** 2, 0.03 ** 2)


def photometric(disparity: Tensor, left: Tensor, right: Tensor) -> Tensor:
    """Reconstruction error of the left view from the right one through ``disparity``."""
    rebuilt = sample_at(right, disparity)
    err = (SSIM_ALPHA * (1 - ssim_map(rebuilt, left)).clamp(0, 2) / 2
           + (1 - SSIM_ALPHA) * (rebuilt - left).abs()).mean(1, keepdim=True)
    return masked_mean(err, in_view(disparity.detach()))


def smoothness(disparity: Tensor, left: Tensor) -> Tensor:
    """Edge-aware smoothness of the mean-normalized disparity."""
    return edge_aware_smoothness(disparity, left, normalize=True)


def lr_consistency(disparity: Tensor, disparity_right: Tensor) -> Tensor:
    """|d_left(x) - d_right(x - d_left(x))| (px) where the match is in view."""
    seen = sample_at(disparity_right, disparity)
    return masked_mean((disparity - seen).abs(), in_view(disparity.detach()))


def sparse(disparity: Tensor, labels: Tensor) -> Tensor:
    """Smooth L1 (beta 1 px) against labels (B, 1, H, W) px, NaN where there is none."""
    ok = torch.isfinite(labels)
    diff = F.smooth_l1_loss(disparity, torch.nan_to_num(labels), reduction='none', beta=1.0)
    return masked_mean(diff, ok)
