"""Building blocks shared by the network families in ``depth_ros.nets``.

All blocks take NCHW float tensors. Nothing here downloads weights.
"""
from __future__ import annotations

import torch
import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_activation(name: str) -> nn.Module:
    """'relu', 'relu6', 'leaky_relu' (slope 0.2), 'swish'/'silu', or 'identity'."""
    acts = {
        'relu': lambda: nn.ReLU(inplace=True),
        'relu6': lambda: nn.ReLU6(inplace=True),
        'leaky_relu': lambda: nn.LeakyReLU(0.2, inplace=True),
        'swish': lambda: nn.SiLU(inplace=True),
        'silu': lambda: nn.SiLU(inplace=True),
        'identity': nn.Identity,
    }
    if name not in acts:
        raise ValueError(f'unknown activation {name!r}; known: {", ".join(acts)}')
    return acts[name]()


class Normalize(nn.Module):
    """RGB in [0, 1] (B, 3, H, W) -> (x - mean) / std; baked into every graph so the
    runtime feeds plain [0, 1] RGB."""

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD):
        super().__init__()
        self.register_buffer('mean', torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer('inv_std', 1.0 / torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


class ConvBNAct(nn.Sequential):
    """k x k conv (no bias) + BatchNorm + activation; 'same' padding for odd k."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 act: str = 'relu', dilation: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, k, stride, dilation * (k // 2), dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            make_activation(act),
        )
