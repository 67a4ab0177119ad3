"""Torch-free inference: stereo disparity and monocular depth behind two small classes.

    from depth_ros.inference import StereoEstimator, DepthEstimator
    disparity = StereoEstimator('opencv_sgbm')(left, right)      # (H, W) px, NaN invalid
    depth = DepthEstimator('fastdepth')(image, fx=525.0)         # (H, W) m, NaN invalid

Networks run in ONNX Runtime from their model cards (``models/<name>.json``); a training
checkpoint (``.pt``) runs in torch (imported only then). Bad inputs raise
:class:`EstimatorError`; missing or corrupt weights raise
:class:`depth_ros.model_card.ModelCardError`. Warnings go to the 'depth_ros' logger.
"""
from .images import EstimatorError
from .mono import DepthEstimator
from .runners import available_providers
from .stereo import StereoEstimator

__all__ = ['DepthEstimator', 'EstimatorError', 'StereoEstimator', 'available_providers']
