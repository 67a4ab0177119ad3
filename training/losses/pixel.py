"""Pixel-wise regression losses: masked L1, SmoothL1, RMSE, KD pixel RMSE, AnyNet stage loss and its
stage-wise distillation.

``pred``/``target``: (B, 1, H, W) in the target's units (metres, or pixels of disparity);
``valid``: optional bool mask of the same shape. Means are pooled over all counted pixels
of the batch; a batch without any counted pixel gives 0.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .masks import Tensor, masked_mean, prepare
from .registry import register_loss

ANYNET_STAGE_WEIGHTS = (0.25, 0.5, 1.0, 1.0)  # stages 1-3 and the SPN output


@register_loss('l1')
def l1_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean |pred - target| over valid pixels (target units)."""
    target, mask = prepare(pred, target, valid)
    return masked_mean((pred - target).abs(), mask)


@register_loss('smooth_l1')
def smooth_l1_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None, *, beta: float = 1.0) -> Tensor:
    """Mean SmoothL1 (Huber / beta): 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta; beta in target units."""
    target, mask = prepare(pred, target, valid)
    return masked_mean(F.smooth_l1_loss(pred, target, reduction='none', beta=beta), mask)


def _rmse(pred: Tensor, target: Tensor, valid: Tensor | None, positive: bool) -> Tensor:
    target, mask = prepare(pred, target, valid, positive)
    # the tiny epsilon keeps the gradient finite (zero) at a perfect prediction
    return torch.sqrt(masked_mean((pred - target) ** 2, mask) + 1e-12)


@register_loss('rmse')
def rmse_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """sqrt(mean (pred - target)^2) over valid pixels, pooled over the batch (target units)."""
    return _rmse(pred, target, valid, positive=True)


@register_loss('kd_pixel', positive_target=False)
def kd_pixel_loss(student: Tensor, teacher: Tensor, valid: Tensor | None = None) -> Tensor:
    """Pixel-wise KD (seed 004): RMSE between the student's and the teacher's (B, 1, H, W)
    predictions. Every finite teacher value counts (relative scores may be <= 0); no gradient
    flows into the teacher."""
    return _rmse(student, teacher.detach(), valid, positive=False)


@register_loss('anynet')
def anynet_stage_loss(preds: Sequence[Tensor], target: Tensor, valid: Tensor | None = None, *,
                      max_disparity: float = 192.0, weights: Sequence[float] = ANYNET_STAGE_WEIGHTS,
                      beta: float = 1.0) -> Tensor:
    """AnyNet training loss: sum_k weights[k] * SmoothL1(preds[k], gt) over 0 < gt < max_disparity.

    ``preds``: the stage disparities (B, 1, H, W) in pixels, already upsampled to the GT
    resolution (as AnyNet does); fewer stages than weights use the first weights (no SPN:
    0.25, 0.5, 1).
    """
    if not 0 < len(preds) <= len(weights):
        raise ValueError(f'{len(preds)} stage outputs for {len(weights)} stage weights')
    mask = _in_range(target, valid, max_disparity)
    return sum(w * smooth_l1_loss(p, target, mask, beta=beta) for p, w in zip(preds, weights))


def _in_range(disparity: Tensor, valid: Tensor | None, max_disparity: float) -> Tensor:
    """Pixels where ``disparity`` is below ``max_disparity`` (NaN compares False), and ``valid``."""
    in_range = disparity < max_disparity
    return in_range if valid is None else in_range & valid.to(torch.bool)


@register_loss('kd_stages', positive_target=False)
def kd_stages_loss(preds: Sequence[Tensor], teacher: Sequence[Tensor], valid: Tensor | None = None, *,
                   max_disparity: float = 192.0, weights: Sequence[float] = ANYNET_STAGE_WEIGHTS,
                   beta: float = 1.0) -> Tensor:
    """Stage-wise distillation of an anytime stereo network: sum_k weights[k] * SmoothL1(preds[k],
    teacher[k]) over the pixels where the teacher's disparity is finite and below ``max_disparity``,
    ground truth or not (the teacher is dense where the renders have none). ``preds`` and
    ``teacher``: stage disparities (B, 1, H, W) px; stage k of the student learns the teacher's
    stage k (the teacher's last stage when it has fewer)."""
    if not 0 < len(preds) <= len(weights) or not teacher:
        raise ValueError(f'{len(preds)} student and {len(teacher)} teacher stages for {len(weights)} stage weights')
    targets = [teacher[min(k, len(teacher) - 1)].detach() for k in range(len(preds))]
    return sum(w * smooth_l1_loss(p, t, _in_range(t, valid, max_disparity), beta=beta)
               for p, t, w in zip(preds, targets, weights))
