"""Input checks and image -> network tensor conversion (numpy only)."""
from __future__ import annotations

import numpy as np

ACCEPTED = 'uint8 RGB images (H, W, 3) or grey images (H, W)'


class EstimatorError(ValueError):
    """Bad input to an estimator: wrong dtype or channel count, mismatched sizes, bad parameters."""


def check_image(image: np.ndarray, what: str = 'image') -> np.ndarray:
    """Return ``image`` as a uint8 (H, W) grey or (H, W, 3) RGB array; (H, W, 1) becomes (H, W).

    Raises EstimatorError naming what was received and what is accepted.
    """
    if not isinstance(image, np.ndarray):
        raise EstimatorError(f'{what} must be a numpy array, got {type(image).__name__}; accepted: {ACCEPTED}')
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise EstimatorError(f'{what} has shape {image.shape} ({channels(image)}); accepted: {ACCEPTED}')
    if image.dtype != np.uint8:
        raise EstimatorError(f'{what} has dtype {image.dtype}; accepted: {ACCEPTED}')
    if min(image.shape[:2]) < 1:
        raise EstimatorError(f'{what} is empty ({image.shape})')
    return image


def channels(image: np.ndarray) -> str:
    """Human description of an array's channel layout for error messages."""
    if image.ndim == 2:
        return '1 channel'
    if image.ndim == 3:
        return f'{image.shape[2]} channels'
    return f'{image.ndim} dimensions'


def check_pair(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check a rectified stereo pair: both valid images of the same shape."""
    left, right = check_image(left, 'left image'), check_image(right, 'right image')
    if left.shape != right.shape:
        raise EstimatorError(f'left image is {size_text(left)} ({channels(left)}) but right image is '
                             f'{size_text(right)} ({channels(right)}); a stereo pair must match')
    return left, right


def size_text(image: np.ndarray) -> str:
    """'WxH' of an image."""
    return f'{image.shape[1]}x{image.shape[0]}'


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) grey of an RGB or grey image (ITU-R BT.601 luma, as OpenCV)."""
    import cv2

    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


class TensorMaker:
    """Converts uint8 images to the network's (N, 3, H, W) float32 input, reusing its buffer.

    ``color`` 'rgb' or 'bgr' is the channel order the network expects (inputs are RGB);
    ``value_range`` (lo, hi) is what 0 and 255 map to; ``normalize`` (card ``input.normalize``,
    e.g. ImageNet's) then maps each channel c to (v - mean[c]) * inv_std[c], in the same pass.
    Grey images are replicated to 3 channels.
    """

    def __init__(self, color: str = 'rgb', value_range: tuple[float, float] = (0.0, 1.0),
                 normalize: dict[str, list[float]] | None = None) -> None:
        if color not in ('rgb', 'bgr'):
            raise ValueError(f"input color must be 'rgb' or 'bgr', not {color!r}")
        self.bgr = color == 'bgr'
        lo, hi = (np.float64(v) for v in value_range)
        mean = np.asarray(normalize['mean'] if normalize else [0.0] * 3, np.float64)
        inv_std = np.asarray(normalize['inv_std'] if normalize else [1.0] * 3, np.float64)
        if self.bgr:
            mean, inv_std = mean[::-1], inv_std[::-1]
        self.scale = ((hi - lo) / 255.0 * inv_std).astype(np.float32).reshape(3, 1, 1)  # per channel
        self.offset = ((lo - mean) * inv_std).astype(np.float32).reshape(3, 1, 1)
        self._uniform = bool(np.all(self.scale == self.scale[0]))
        self._buffers: dict[str, np.ndarray] = {}

    def __call__(self, *images: np.ndarray, slot: str = 'image') -> np.ndarray:
        """(H, W[, 3]) uint8 image(s) -> (N, 3, H, W) float32, N images stacked; ``slot`` names a
        reusable buffer (one per network input, so 'left' and 'right' do not overwrite each other)."""
        h, w = images[0].shape[:2]
        out = self._buffers.get(slot)
        if out is None or out.shape != (len(images), 3, h, w):
            out = self._buffers[slot] = np.empty((len(images), 3, h, w), np.float32)
        for i, image in enumerate(images):
            if image.ndim == 2:
                src = image[None]
            else:
                src = (image[:, :, ::-1] if self.bgr else image).transpose(2, 0, 1)
            np.multiply(src, self.scale[0] if self._uniform else self.scale, out=out[i])
            if np.any(self.offset):
                out[i] += self.offset
        return out
