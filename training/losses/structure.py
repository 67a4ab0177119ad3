"""Structure losses: Sobel edge loss, gradient loss, SSIM, edge-aware smoothness, and the
seed recipes built from them (FastDepth-style seed 002, DenseDepth seed 001, seed 003).

``pred``/``target``: (B, 1, H, W) depth in target units (metres); ``valid``: bool mask of the
same shape. Derivative terms only use pixels whose whole stencil is valid.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from depth_ros.metrics import ssim_from_moments, ssim_window, SSIM_K1, SSIM_K2
from .masks import Tensor, erode, masked_mean, prepare
from .pixel import l1_loss, smooth_l1_loss
from .registry import register_loss

_SOBEL_X = (-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0)


def sobel(x: Tensor) -> Tensor:
    """Sobel derivatives of (B, 1, H, W) ``x`` -> (B, 2, H-2, W-2) (d/dx, d/dy), normalised by 8
    so that a ramp of slope s per pixel gives s (units of x per pixel); no padding."""
    kx = torch.tensor(_SOBEL_X, dtype=x.dtype, device=x.device).view(1, 1, 3, 3) / 8.0
    return F.conv2d(x, torch.cat([kx, kx.transpose(-1, -2)]))


def forward_differences(x: Tensor) -> tuple[Tensor, Tensor]:
    """(x[..., 1:] - x[..., :-1], x[..., 1:, :] - x[..., :-1, :]): shapes (.., H, W-1), (.., H-1, W)."""
    return x[..., 1:] - x[..., :-1], x[..., 1:, :] - x[..., :-1, :]


def pair_masks(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Masks of forward differences whose two pixels are both valid."""
    return mask[..., 1:] & mask[..., :-1], mask[..., 1:, :] & mask[..., :-1, :]


@register_loss('edge')
def edge_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None, *, beta: float = 1.0,
              magnitude: bool = False) -> Tensor:
    """SmoothL1 between Sobel derivatives of prediction and target (seed 002's edge loss).

    Compares the (d/dx, d/dy) components, or with ``magnitude`` the gradient norms; only where
    the target's whole 3x3 window is valid. Units: target units per pixel.
    """
    target, mask = prepare(pred, target, valid)
    gp, gt = sobel(pred), sobel(target)
    if magnitude:
        gp, gt = (torch.sqrt((g ** 2).sum(1, keepdim=True) + 1e-12) for g in (gp, gt))
    return masked_mean(F.smooth_l1_loss(gp, gt, reduction='none', beta=beta), erode(mask, 3))


@register_loss('fastdepth')
def smooth_l1_edge_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None, *, beta: float = 1.0,
                        lam: float = 12.0, magnitude: bool = False) -> Tensor:
    """Seed 002: SmoothL1(pred, gt) + lam * EdgeLoss(pred, gt), lam = 12 in the seed."""
    return (smooth_l1_loss(pred, target, valid, beta=beta)
            + lam * edge_loss(pred, target, valid, beta=beta, magnitude=magnitude))


@register_loss('gradient')
def gradient_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """DenseDepth gradient term: mean |dx pred - dx gt| + mean |dy pred - dy gt| (forward
    differences, each mean over differences whose two pixels are valid)."""
    target, mask = prepare(pred, target, valid)
    masks = pair_masks(mask)
    return sum(masked_mean((dp - dt).abs(), m)
               for dp, dt, m in zip(forward_differences(pred), forward_differences(target), masks))


def ssim(pred: Tensor, target: Tensor, valid: Tensor | None = None, *, data_range: float = 10.0,
         window: str = 'gaussian', size: int = 11, sigma: float = 1.5, min_coverage: float = 0.5) -> Tensor:
    """Differentiable masked SSIM averaged over the batch (same definition as
    ``depth_ros.metrics.ssim``): local statistics over valid pixels of each window (gaussian
    ``sigma`` px or box, ``size`` px), C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = ``data_range``
    in target units (10 m = NYU cap by default), averaged over valid pixels whose window is at
    least ``min_coverage`` valid."""
    target, mask = prepare(pred, target, valid)
    w = torch.as_tensor(ssim_window(window, size, sigma), dtype=pred.dtype, device=pred.device)
    r = size // 2

    def filt(x: Tensor) -> Tensor:
        x = F.conv2d(x, w.view(1, 1, 1, size), padding=(0, r))
        return F.conv2d(x, w.view(1, 1, size, 1), padding=(r, 0))

    m = mask.to(pred.dtype)
    x, y = pred * m, target * m
    cover = filt(m)
    safe = cover.clamp_min(1e-6)
    mu_x, mu_y = filt(x) / safe, filt(y) / safe
    var_x, var_y = filt(x * x) / safe - mu_x ** 2, filt(y * y) / safe - mu_y ** 2
    cov = filt(x * y) / safe - mu_x * mu_y
    smap = ssim_from_moments(mu_x, mu_y, var_x, var_y, cov, (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2)
    return masked_mean(smap, mask & (cover >= min_coverage))


@register_loss('ssim')
def ssim_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None, *, data_range: float = 10.0,
              window: str = 'gaussian', size: int = 11, sigma: float = 1.5) -> Tensor:
    """(1 - SSIM) / 2 in [0, 1]; 0 for a perfect prediction."""
    return (1.0 - ssim(pred, target, valid, data_range=data_range, window=window, size=size, sigma=sigma)) / 2


@register_loss('densedepth')
def densedepth_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None, *, w_l1: float = 0.1,
                    w_grad: float = 1.0, w_ssim: float = 1.0, data_range: float = 10.0,
                    window: str = 'gaussian') -> Tensor:
    """DenseDepth / seed 001: w_l1 * L1 + w_grad * gradient + w_ssim * (1 - SSIM) / 2."""
    return (w_l1 * l1_loss(pred, target, valid) + w_grad * gradient_loss(pred, target, valid)
            + w_ssim * ssim_loss(pred, target, valid, data_range=data_range, window=window))


def edge_aware_smoothness(pred: Tensor, image: Tensor, valid: Tensor | None = None, *,
                          normalize: bool = False) -> Tensor:
    """Edge-aware smoothness (seed 003): mean |d pred| * exp(-mean_c |d image|) over x and y.

    ``pred`` (B, 1, H, W); ``image`` (B, C, H, W) in [0, 1] at the same size; ``valid``: pixels
    to regularise (all if None; needs no GT). ``normalize`` divides ``pred`` by its per-image
    mean first (Monodepth2 style, scale-invariant).
    """
    if pred.shape[-2:] != image.shape[-2:]:
        raise ValueError('prediction and image sizes differ; resize before calling the loss')
    if normalize:
        pred = pred / pred.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    mask = torch.ones_like(pred, dtype=torch.bool) if valid is None else valid.to(torch.bool)
    return sum(masked_mean(dp.abs() * torch.exp(-di.abs().mean(1, keepdim=True)), m)
               for dp, di, m in zip(forward_differences(pred), forward_differences(image), pair_masks(mask)))


@register_loss('l1_ssim_smoothness', needs=('image',))
def l1_ssim_smoothness_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None, *, image: Tensor,
                            w_l1: float = 0.1, w_ssim: float = 1.7, w_smooth: float = 0.9,
                            data_range: float = 10.0) -> Tensor:
    """Seed 003: w_l1 * L1 + w_ssim * (1 - SSIM) / 2 + w_smooth * edge-aware smoothness.

    Defaults are the Keras DIODE depth example the seed follows (0.1 L1, 0.85 (1 - SSIM),
    0.9 smoothness), with the SSIM weight doubled for this package's halved SSIM term. The
    smoothness term covers every pixel (it needs no GT).
    """
    return (w_l1 * l1_loss(pred, target, valid)
            + w_ssim * ssim_loss(pred, target, valid, data_range=data_range)
            + w_smooth * edge_aware_smoothness(pred, image))
