"""Weighted sums of one loss over several prediction heads (seed 004 intermediate heads)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .masks import Tensor, resize_input, resize_target, target_mask

SEED004_HEAD_WEIGHTS = (0.5, 0.25, 0.25)  # final prediction, then the two intermediate heads


def multi_head_loss(loss_fn: Callable[..., Tensor], preds: Sequence[Tensor], target: Tensor,
                    valid: Tensor | None = None, weights: Sequence[float] = SEED004_HEAD_WEIGHTS,
                    positive: bool = True, **inputs: Tensor) -> Tensor:
    """sum_i weights[i] * loss_fn(preds[i], target_i, valid_i, **inputs_i); preds[0] is the final head.

    A dense (B, 1, H, W) ``target`` is resized to each head's size with ``resize_target``
    (masked area average; ``positive``: target <= 0 counts as missing, as in the loss); other
    targets (e.g. relative-depth pairs in normalised coordinates) are passed unchanged. Dense
    (B, C, H, W) ``inputs`` such as the image are resized with ``resize_input``.
    """
    if len(preds) != len(weights):
        raise ValueError(f'{len(preds)} heads but {len(weights)} weights')
    dense = target.dim() == 4
    if dense:
        mask = target_mask(target, valid, positive)
        target = torch.where(mask, target, torch.zeros_like(target))
    total = preds[0].new_zeros(())
    for pred, weight in zip(preds, weights):
        size = tuple(pred.shape[-2:])
        t, v = resize_target(target, mask, size) if dense else (target, valid)
        extra = {k: resize_input(x, size) if x.dim() == 4 else x for k, x in inputs.items()}
        total = total + weight * loss_fn(pred, t, v, **extra)
    return total
