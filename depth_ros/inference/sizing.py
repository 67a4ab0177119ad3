"""Size mapping between camera images and network inputs/outputs, shared by every backend.

An image of ``image_size`` (H, W) is resized to ``net_size`` (h, w), padded right/bottom by edge
replication to ``padded_size`` (what the network runs at); the network output, at
``padded_size * output_scale``, is cropped back to ``net_size * output_scale`` and resized to
``out_size``. Resizing follows OpenCV's pixel-centre convention, so a value at network column x'
belongs to image column x with x' + 0.5 = (x + 0.5) * scale_x; disparities (px) must be divided
by ``scale_x``, focal lengths multiplied by it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..model_card import ModelCardError

Size = tuple[int, int]  # (height, width)


def _resize(image: np.ndarray, size: Size) -> np.ndarray:
    """cv2.resize to (h, w): area averaging when shrinking both axes, bilinear otherwise."""
    if image.shape[:2] == size:
        return image
    shrink = size[0] <= image.shape[0] and size[1] <= image.shape[1]
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@dataclass(frozen=True)
class SizeMap:
    """How images of one size reach a network and how its output comes back (sizes are (H, W))."""
    image_size: Size
    net_size: Size
    padded_size: Size
    out_size: Size
    output_scale: float = 1.0

    @property
    def scale_x(self) -> float:
        """Horizontal scale from the input image to the network input (w / W)."""
        return self.net_size[1] / self.image_size[1]

    @property
    def output_shape(self) -> Size:
        """(h, w) the network's output must have: padded_size * output_scale."""
        return (round(self.padded_size[0] * self.output_scale), round(self.padded_size[1] * self.output_scale))

    def to_network(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W[, C]) image -> (hp, wp[, C]) uint8: resized, then padded by edge replication."""
        image = _resize(image, self.net_size)
        bottom, right = self.padded_size[0] - self.net_size[0], self.padded_size[1] - self.net_size[1]
        if bottom or right:
            image = cv2.copyMakeBorder(image, 0, bottom, 0, right, cv2.BORDER_REPLICATE)
        return image

    def from_network(self, output: np.ndarray) -> np.ndarray:
        """(h, w) float32 network output -> (H', W') = out_size float32: padding cropped, resized.

        Values are not rescaled (the caller knows what they mean). NaN spreads to the pixels
        interpolated from it, so invalid pixels never blend into valid ones.
        """
        if output.shape != self.output_shape:
            raise ModelCardError(f'network output is {output.shape[1]}x{output.shape[0]} for an input of '
                                 f'{self.padded_size[1]}x{self.padded_size[0]}; its model card says output '
                                 f'scale {self.output_scale}, i.e. {self.output_shape[1]}x{self.output_shape[0]}')
        crop = (round(self.net_size[0] * self.output_scale), round(self.net_size[1] * self.output_scale))
        return _resize(output[:crop[0], :crop[1]], self.out_size)


def scaled_size(size: Size, scale: float) -> Size:
    """(H, W) * scale, rounded half up, at least 1x1."""
    return (max(1, int(size[0] * scale + 0.5)), max(1, int(size[1] * scale + 0.5)))


@lru_cache(maxsize=16)
def size_map(image_size: Size, net_size: Size, *, multiple_of: int = 1, out_size: Size | None = None,
             output_scale: float = 1.0) -> SizeMap:
    """SizeMap resizing ``image_size`` to ``net_size`` and padding it up to a multiple of
    ``multiple_of``; the result comes back at ``out_size`` (default: the image size)."""
    padded = tuple(int(math.ceil(n / multiple_of)) * multiple_of for n in net_size)
    return SizeMap(tuple(image_size), tuple(net_size), padded, tuple(out_size or image_size), float(output_scale))


