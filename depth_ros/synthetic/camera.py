"""Imperfect cameras for rendered images (numpy + OpenCV): what a real stereo rig adds to a perfect render.

The renderer's images are ideal (no noise, no blur, identical exposure in both views, exact
rectification). ``CameraArtifacts`` turns a rendered sample into what a real camera pair would
deliver, in the order light takes through a camera:

1. residual rectification error: the right view shifted vertically by a sub-pixel amount
   (bicubic). The ground truth is NOT changed: it stays the ideal rectified disparity, which is
   what a network must output when the calibration is slightly off (real rigs leave ~0.1-0.5 px);
2. lens: defocus blur (gaussian, sigma per view) and vignetting (radial fall-off, cos^4-like);
3. exposure and white balance: a gain and per-channel gains per view, the right view's differing
   from the left's (auto exposure and AWB run per camera);
4. sensor: shot noise (variance proportional to the signal) plus read noise, in linear light;
5. processing: a tone curve (gamma 1.8-2.6 and an S-shaped contrast curve), grayscale cameras
   (both views), 8-bit quantisation and JPEG compression (quality per view).

Only images change (apart from step 1, documented above), so ground truth stays exact. Samples are
numpy: one stereo sample ('left', 'right') or mono sample ('image'), images (H, W, 3) uint8 or float
in [0, 1]; outputs are uint8 (as a camera delivers). Randomness comes from a numpy Generator.

    artifacts = CameraArtifacts()
    sample = artifacts(sample, np.random.default_rng(0))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

Sample = dict[str, Any]
_VIEWS = ('image', 'left', 'right')


@dataclass
class CameraArtifacts:
    """Ranges (uniform unless stated) and probabilities of each artifact; see the module docstring."""

    vertical_offset: float = 0.5                 # |dy| px of the right view, at most
    blur: tuple[float, float] = (0.0, 1.2)       # defocus sigma, px
    blur_prob: float = 0.5
    vignetting: tuple[float, float] = (0.0, 0.5)  # brightness lost at the corners (share)
    exposure: tuple[float, float] = (0.6, 1.5)   # overall gain (log-uniform)
    exposure_lr: float = 0.15                    # right/left gain ratio within 1 +- this
    white_balance: float = 0.15                  # per-channel gain within 1 +- this
    white_balance_lr: float = 0.04               # right/left per-channel ratio within 1 +- this
    shot_noise: tuple[float, float] = (1e-4, 4e-3)  # variance per unit of linear signal (log-uniform)
    read_noise: tuple[float, float] = (1e-3, 1.5e-2)  # sigma, linear units (log-uniform)
    gamma: tuple[float, float] = (1.8, 2.6)      # display gamma of the tone curve
    s_curve: tuple[float, float] = (0.0, 0.6)    # strength of the contrast S-curve
    grayscale_prob: float = 0.2
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 95)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Parameters of one camera pair: shared ones and per-view ones (left first)."""
        gain = np.exp(rng.uniform(*np.log(self.exposure)))
        wb = rng.uniform(1 - self.white_balance, 1 + self.white_balance, 3)
        blur = rng.uniform(*self.blur) if rng.random() < self.blur_prob else 0.0
        views = []
        for side in range(2):
            lr_gain = 1.0 if side == 0 else rng.uniform(1 - self.exposure_lr, 1 + self.exposure_lr)
            lr_wb = 1.0 if side == 0 else rng.uniform(1 - self.white_balance_lr, 1 + self.white_balance_lr, 3)
            views.append({'gain': gain * lr_gain * wb * lr_wb,
                          'blur': blur * (1.0 if side == 0 else rng.uniform(0.8, 1.25)),
                          'vignetting': rng.uniform(*self.vignetting),
                          'centre': rng.uniform(-0.05, 0.05, 2),
                          'jpeg': int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
                          if rng.random() < self.jpeg_prob else None})
        return {'dy': rng.uniform(-self.vertical_offset, self.vertical_offset),
                'shot': np.exp(rng.uniform(*np.log(self.shot_noise))),
                'read': np.exp(rng.uniform(*np.log(self.read_noise))),
                'gamma': rng.uniform(*self.gamma), 's_curve': rng.uniform(*self.s_curve),
                'grayscale': rng.random() < self.grayscale_prob, 'views': views}

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """The sample with every image passed through the sampled camera pair (uint8 out)."""
        params = self.sample(rng)
        out = dict(sample)
        for key in _VIEWS:
            if key in sample:
                out[key] = apply_camera(sample[key], params, params['views'][key == 'right'], rng,
                                        dy=params['dy'] if key == 'right' else 0.0)
        return out


def shift_rows(image: np.ndarray, dy: float) -> np.ndarray:
    """The image moved down by ``dy`` px (bicubic, borders replicated); float32."""
    matrix = np.float32([[1, 0, 0], [0, 1, dy]])
    return cv2.warpAffine(image.astype(np.float32), matrix, image.shape[1::-1], flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


def vignette(height: int, width: int, strength: float, centre: np.ndarray) -> np.ndarray:
    """(H, W, 1) gain: 1 at ``centre`` (offset from the image centre, share of the size), 1 - strength
    at the corners, a cos^4-like fall-off (1 - strength * r^2, r = 1 at the corners)."""
    ys = (np.arange(height, dtype=np.float32) / max(height - 1, 1) - 0.5 - centre[1]) * 2.0
    xs = (np.arange(width, dtype=np.float32) / max(width - 1, 1) - 0.5 - centre[0]) * 2.0
    r2 = (xs[None, :] ** 2 + ys[:, None] ** 2) / 2.0
    return (1.0 - strength * np.clip(r2, 0.0, 1.0))[..., None]


def tone(x: np.ndarray, gamma: float, s_curve: float) -> np.ndarray:
    """Linear [0, 1] -> display [0, 1]: gamma encoding then an S-curve blended in with ``s_curve``."""
    y = np.clip(x, 0.0, 1.0) ** (1.0 / gamma)
    return y + s_curve * (y * y * (3.0 - 2.0 * y) - y)


def apply_camera(image: np.ndarray, params: dict[str, Any], view: dict[str, Any], rng: np.random.Generator,
                 dy: float = 0.0) -> np.ndarray:
    """One view through the camera: (H, W, 3) uint8 or float [0, 1] -> (H, W, 3) uint8 (see the module doc)."""
    x = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    x = np.clip(x, 0.0, 1.0) ** 2.2                    # the render is display-referred: back to linear light
    if dy:
        x = shift_rows(x, dy)
    if view['blur'] > 0.05:
        x = cv2.GaussianBlur(x, (0, 0), view['blur'])
    x = x * vignette(x.shape[0], x.shape[1], view['vignetting'], view['centre']) * view['gain'].astype(np.float32)
    x = np.clip(x, 0.0, 1.0)
    sigma = np.sqrt(params['shot'] * x + params['read'] ** 2)
    x = x + sigma * rng.standard_normal(x.shape, dtype=np.float32)
    x = tone(x, params['gamma'], params['s_curve'])
    if params['grayscale']:
        x = np.repeat(x @ np.float32([0.299, 0.587, 0.114])[:, None], 3, axis=-1)
    out = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    if view['jpeg'] is not None:
        ok, data = cv2.imencode('.jpg', out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, view['jpeg']])
        out = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()
    return out
