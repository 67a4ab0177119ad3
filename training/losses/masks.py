"""Mask handling shared by all losses: derive validity, masked means, resizing targets.

Tensors are (B, 1, H, W) unless noted. Ground truth is invalid where it is NaN/inf or
(for depth/disparity targets) <= 0; an optional boolean ``valid`` mask is AND-ed with that.
Invalid target values are replaced by 0 *before* any arithmetic so that neither the loss nor
its gradient can pick up a NaN.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def target_mask(target: Tensor, valid: Tensor | None = None, positive: bool = True) -> Tensor:
    """Bool mask of usable target pixels: finite, > 0 if ``positive``, AND ``valid``."""
    mask = torch.isfinite(target)
    if positive:
        mask = mask & (target > 0)
    if valid is not None:
        mask = mask & valid.to(dtype=torch.bool, device=target.device)
    return mask


def prepare(pred: Tensor, target: Tensor, valid: Tensor | None = None,
            positive: bool = True) -> tuple[Tensor, Tensor]:
    """(clean target, bool mask) for a dense loss; target values outside the mask become 0.

    ``positive``: also treat target <= 0 as missing (depth/disparity GT); False for targets
    such as a teacher's relative scores that may be negative. The prediction must already
    have the target's shape: a caller with a lower-resolution output resizes one of them
    (``resize_target`` or ``multi_head_loss``).
    """
    if pred.shape != target.shape:
        raise ValueError(f'prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ; '
                         'resize before calling the loss')
    mask = target_mask(target, valid, positive)
    return torch.where(mask, target, torch.zeros_like(target)), mask


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over ``mask`` (pooled over the batch); 0 (with zero gradient) if empty."""
    mask = mask.expand_as(x)
    total = torch.where(mask, x, torch.zeros_like(x)).sum()
    return total / mask.sum().clamp_min(1).to(x.dtype)


def erode(mask: Tensor, k: int) -> Tensor:
    """Bool mask (B, 1, H-k+1, W-k+1): True where the whole k x k window of ``mask`` is True
    (the 'valid' convolution footprint of a k x k filter)."""
    return -F.max_pool2d(-mask.to(torch.float32), k, stride=1) > 0.5


def resize_target(target: Tensor, valid: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Resize a (B, 1, H, W) target and its bool mask to ``size`` (h, w).

    Downsampling averages only valid pixels of each cell (area weights); a cell stays valid
    when at least half of its area was valid. Upsampling is nearest-neighbour. Values are
    not rescaled, so use it for depth, not for disparities (which scale with the width).
    """
    if tuple(target.shape[-2:]) == tuple(size):
        return target, valid
    if size[0] > target.shape[-2] or size[1] > target.shape[-1]:
        return (F.interpolate(target, size=size, mode='nearest'),
                F.interpolate(valid.to(target.dtype), size=size, mode='nearest') > 0.5)
    weight = valid.to(target.dtype)
    num = F.adaptive_avg_pool2d(torch.where(valid, target, torch.zeros_like(target)), size)
    den = F.adaptive_avg_pool2d(weight, size)
    keep = den >= 0.5
    return torch.where(keep, num / den.clamp_min(1e-6), torch.zeros_like(num)), keep


def resize_input(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a dense (B, C, H, W) input such as the RGB image: area average down, bilinear up."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] <= x.shape[-2] and size[1] <= x.shape[-1]
    if shrink:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)
