"""Losses on the shape of a depth map rather than its metric error (issue 9).

L1 on metres weighs a pixel by its distance: a board 0.5 m away, wrong by 20 %, costs what a wall at
10 m wrong by 1 % costs, so the students learnt the room's layout and ignored near objects. These
losses weigh every pixel by its relative error:

- ``log_l1``: mean |log pred - log gt| (metric, relative).
- ``ssi_disparity``: MiDaS' scale-and-shift-invariant loss on inverse depth: each image's prediction
  ``1 / pred`` is fitted to ``1 / gt`` by least squares (scale s, shift t, closed form, differentiable),
  then mean |s / pred + t - 1 / gt| / mean(1 / gt) (per image); plus, weighted by ``grad``, MiDaS'
  gradient matching of that residual at ``scales`` scales.
- ``held_shape``: the shape of the held object alone (content 'held' / 'boards', whose renders store
  its pixels as the batch input 'held'): log pred - log gt minus its mean over the object, mean |.|
  plus ``grad`` x its forward differences. Scale-invariant but not shift-invariant, as the
  evaluation's median scaling: a board must be as slanted as it is, not only in the right direction.

``pred``/``target`` (B, 1, H, W) depth (m, > 0), ``valid`` optional bool mask.
"""
from __future__ import annotations

import torch

from .masks import Tensor, masked_mean, prepare
from .registry import register_loss
from .structure import pair_masks, forward_differences

MIN_DEPTH = 1e-3   # m: predictions are clamped here before log or inverse


def log_ratio(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """log pred - log target on ``mask``, 0 elsewhere (no NaN or inf anywhere)."""
    log_target = torch.log(torch.where(mask, target, torch.ones_like(target)))
    return torch.where(mask, torch.log(pred.clamp_min(MIN_DEPTH)) - log_target, torch.zeros_like(target))


@register_loss('log_l1')
def log_l1_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean |log pred - log target| over valid pixels (relative error, unitless)."""
    target, mask = prepare(pred, target, valid)
    return masked_mean(log_ratio(pred, target, mask).abs(), mask)


def align_scale_shift(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """``s * x + t`` with (s, t) per image minimising sum over ``mask`` of (s x + t - y)^2; (B, 1, H, W).
    Images with fewer than two distinct masked values keep s = 0, t = their mean. ``x`` and ``y``
    must be finite everywhere (zero them outside the mask)."""
    m = mask.to(x.dtype)
    dims = (1, 2, 3)
    n = m.sum(dims).clamp_min(1.0)
    mx, my = (m * x).sum(dims) / n, (m * y).sum(dims) / n
    dx = torch.where(mask, x - mx.view(-1, 1, 1, 1), torch.zeros_like(x))
    var = (dx * dx).sum(dims)
    cov = (dx * y).sum(dims)
    s = cov / var.clamp_min(1e-12)
    t = my - s * mx
    return s.view(-1, 1, 1, 1) * x + t.view(-1, 1, 1, 1)


@register_loss('ssi_disparity')
def ssi_disparity_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None, *, grad: float = 0.5,
                       scales: int = 3) -> Tensor:
    """Scale-and-shift-invariant disparity error (see the module doc) + ``grad`` x gradient matching."""
    target, mask = prepare(pred, target, valid)
    gt_disp = torch.where(mask, 1.0 / torch.where(mask, target, torch.ones_like(target)), torch.zeros_like(target))
    inverse = torch.where(mask, 1.0 / pred.clamp_min(MIN_DEPTH), torch.zeros_like(pred))   # no NaN reaches the fit
    aligned = align_scale_shift(inverse, gt_disp, mask)
    residual = torch.where(mask, aligned - gt_disp, torch.zeros_like(aligned))
    # relative to each image's mean disparity (MiDaS normalises per image too): near pixels weigh most,
    # and near and far scenes alike; the evaluation's per-pixel AbsRel would let the sky dominate
    m = mask.to(pred.dtype)
    mean = (m * gt_disp).sum((1, 2, 3), keepdim=True) / m.sum((1, 2, 3), keepdim=True).clamp_min(1.0)
    r = residual / mean.clamp_min(1e-6)
    loss = masked_mean(r.abs(), mask)
    keep = mask
    for k in range(scales if grad > 0 else 0):
        if k:
            r, keep = r[..., ::2, ::2], keep[..., ::2, ::2]
        loss = loss + grad / scales * sum(masked_mean(d.abs(), pm)
                                          for d, pm in zip(forward_differences(r), pair_masks(keep)))
    return loss


@register_loss('held_shape', needs=('held',))
def held_shape_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None, *, held: Tensor,
                    min_share: float = 0.03, grad: float = 0.5) -> Tensor:
    """Scale-invariant log error on the held object (see the module doc); ``held`` (B, 1, H, W) its
    0/1 map. Images whose object covers under ``min_share`` of the view do not count (0 if none does)."""
    target, mask = prepare(pred, target, valid)
    mask = mask & (held > 0.5)
    share = mask.flatten(1).float().mean(1)
    mask = mask & (share >= min_share).view(-1, 1, 1, 1)
    r = log_ratio(pred, target, mask)
    n = mask.flatten(1).sum(1).clamp_min(1).view(-1, 1, 1, 1)
    r = torch.where(mask, r - r.sum((1, 2, 3), keepdim=True) / n, torch.zeros_like(r))
    return masked_mean(r.abs(), mask) + grad * sum(masked_mean(d.abs(), pm)
                                                   for d, pm in zip(forward_differences(r), pair_masks(mask)))
