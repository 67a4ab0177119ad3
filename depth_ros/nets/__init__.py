"""PyTorch networks (needs torch): ``create_model(name, **options)``, ``list_models()``.

Conventions every network follows:
- inputs are RGB float32 in [0, 1], NCHW; ImageNet normalization happens inside the network;
- mono networks return depth in metres of the canonical camera (see model cards), (B, 1, h, w),
  positive; stereo networks take (left, right) and return disparity in pixels of the input,
  (B, 1, H, W);
- in training mode networks with auxiliary outputs return a list: mono networks the final
  prediction first, then the auxiliary heads; AnyNet every stage's output, stage 1 first.
"""
from . import anynet, autoencoder, fastdepth, lightdepth, mbv2_fbnet, teacher, yolo_unet  # noqa: F401  (register)
from ._registry import create_model, list_models, model_kind, register_model

__all__ = ['create_model', 'list_models', 'model_kind', 'register_model']
