"""Relative-depth losses (seed 004): ranking loss on point pairs and pairwise-feature KD.

Pairs are (B, K, 5) tensors of rows ``(y_i, x_i, y_j, x_j, r)`` with coordinates normalised
to [0, 1] (``(pixel + 0.5) / size``, see ``depth_ros.metrics.normalize_pairs``) so the same
pairs serve every head resolution; ``r = +1``: point i is closer to the camera than j,
``-1``: farther, ``0``: about equal. Padding rows are excluded with ``valid`` (B, K) or NaNs.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .masks import Tensor
from .registry import register_loss


def sample_pairs(pred: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
    """Prediction values at both points: ``pred`` (B, 1, H, W), ``pairs`` (B, K, 5) -> (z_i, z_j),
    each (B, K). Normalised coordinate u maps to pixel floor(u * size), clipped."""
    b, _, h, w = pred.shape
    c = torch.nan_to_num(pairs[..., :4].to(pred.dtype))
    rows = [(c[..., k] * s).floor().clamp(0, s - 1).long() for k, s in zip(range(4), (h, w, h, w))]
    flat = pred.reshape(b, h * w)
    return flat.gather(1, rows[0] * w + rows[1]), flat.gather(1, rows[2] * w + rows[3])


@register_loss('ranking')
def ranking_loss(pred: Tensor, pairs: Tensor, valid: Tensor | None = None, *,
                 higher_is_closer: bool = False) -> Tensor:
    """Ranking loss (seed 004 Eq. 2, Chen et al. 2016), mean over valid pairs of the batch.

    With s = how much closer the prediction puts i than j (z_j - z_i for a depth-like ``pred``,
    z_i - z_j when ``higher_is_closer``, e.g. inverse depth or scores): r = +-1 gives
    log(1 + exp(-r s)), r = 0 gives s^2. Eq. 2 as printed (r = 1: log(1 + exp(z_j - z_i)))
    is the ``higher_is_closer=True`` case. A pair counts when r is in {-1, 0, 1}, its entries
    are finite and ``valid`` (B, K) is set.
    """
    r = pairs[..., 4].to(pred.dtype)
    ok = torch.isfinite(pairs).all(-1) & ((r == -1) | (r == 0) | (r == 1))
    if valid is not None:
        ok = ok & valid.to(torch.bool)
    r = torch.where(ok, r, torch.zeros_like(r))
    z_i, z_j = sample_pairs(pred, pairs)
    s = z_i - z_j if higher_is_closer else z_j - z_i
    per_pair = torch.where(r == 0, s ** 2, F.softplus(-r * s))
    return torch.where(ok, per_pair, torch.zeros_like(per_pair)).sum() / ok.sum().clamp_min(1)


def _nodes(feat: Tensor, grid: tuple[int, int]) -> Tensor:
    """(B, C, H, W) -> unit-norm node features (B, C, N), N = grid h * w, by average pooling."""
    pooled = F.adaptive_avg_pool2d(feat, grid) if tuple(feat.shape[-2:]) != grid else feat
    return F.normalize(pooled.flatten(2), dim=1, eps=1e-8)


@register_loss('kd_pairwise', positive_target=False)
def kd_pairwise_loss(student_feat: Tensor, teacher_feat: Tensor, valid: Tensor | None = None, *,
                     grid: Sequence[int] | None = None) -> Tensor:
    """Pairwise (structured) KD loss of Liu et al. 2019 as used by seed 004.

    Both feature maps (B, Cs, Hs, Ws) / (B, Ct, Ht, Wt) are average-pooled to ``grid`` (h, w)
    nodes (default: the student's size); a_ij is the cosine similarity of nodes i and j, and
    the loss is mean_ij (a_ij^student - a_ij^teacher)^2, in [0, 4]. Channel counts may differ
    (only the N x N similarity matrices are compared). ``valid`` (B, 1, H, W), any size, keeps
    the nodes whose cell is at least half valid. Memory grows as N^2: pool large maps.
    No gradient flows into the teacher.
    """
    grid = tuple(student_feat.shape[-2:]) if grid is None else (int(grid[0]), int(grid[1]))
    ns, nt = _nodes(student_feat, grid), _nodes(teacher_feat.detach(), grid)
    diff = (ns.transpose(1, 2) @ ns - nt.transpose(1, 2) @ nt) ** 2
    if valid is None:
        return diff.mean()
    node = (F.adaptive_avg_pool2d(valid.to(student_feat.dtype), grid) >= 0.5).flatten(1).to(diff.dtype)
    weight = node[:, :, None] * node[:, None, :]
    return (diff * weight).sum() / weight.sum().clamp_min(1)
