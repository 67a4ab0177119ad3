"""Training losses for the depth students and AnyNet (torch; masks are AND-ed, never OR-ed).

Dense losses take ``pred`` and ``target`` (B, 1, H, W) of the same size (the caller resizes,
or uses ``multi_head_loss`` for lower-resolution heads) and an optional bool ``valid``;
target pixels that are NaN or <= 0 never count. Recipes build them by name::

    loss = build_loss({'name': 'densedepth', 'w_l1': 0.1})
    value = loss(pred, depth, valid)

Registered names: see ``list_losses()``.
"""
from .heads import SEED004_HEAD_WEIGHTS, multi_head_loss
from .masks import masked_mean, prepare, resize_target, target_mask
from .pixel import ANYNET_STAGE_WEIGHTS, anynet_stage_loss, kd_pixel_loss, l1_loss, rmse_loss, smooth_l1_loss
from .rebalance import LossRebalancer
from .registry import Loss, build_loss, list_losses, register_loss
from .relative import kd_pairwise_loss, ranking_loss, sample_pairs
from .shape import align_scale_shift, log_l1_loss, ssi_disparity_loss
from .structure import (densedepth_loss, edge_aware_smoothness, edge_loss, gradient_loss, l1_ssim_smoothness_loss,
                        smooth_l1_edge_loss, sobel, ssim, ssim_loss)

__all__ = [
    'ANYNET_STAGE_WEIGHTS', 'SEED004_HEAD_WEIGHTS', 'Loss', 'LossRebalancer', 'align_scale_shift',
    'anynet_stage_loss', 'build_loss',
    'densedepth_loss', 'edge_aware_smoothness', 'edge_loss', 'gradient_loss', 'kd_pairwise_loss', 'kd_pixel_loss',
    'l1_loss', 'l1_ssim_smoothness_loss', 'list_losses', 'log_l1_loss', 'masked_mean', 'multi_head_loss', 'prepare',
    'ranking_loss', 'register_loss', 'resize_target', 'rmse_loss', 'sample_pairs', 'smooth_l1_edge_loss',
    'smooth_l1_loss', 'sobel', 'ssi_disparity_loss', 'ssim', 'ssim_loss', 'target_mask',
]
