"""Augmentations of the seed papers, one implementation for numpy samples and torch batches.

Layouts (decided by the array type):
- numpy: ONE sample, images (H, W, 3) (uint8 or float in [0, 1]), maps (H, W);
- torch: a BATCH, images (B, 3, H, W) float in [0, 1], maps (B, 1, H, W); random choices are
  made per sample.

Operations: horizontal flip (mono: image and maps; stereo: both views mirrored AND swapped,
which needs the right-view maps, e.g. 'disparity_right', and is skipped when one is missing),
RGB channel permutation (the same for both views; seed 001), crops (the same window for every
map and view) and photometric jitter (brightness, contrast, gamma, colour, noise, with a small
independent left/right variation); optionally an imperfect camera pair
(``depth_ros.synthetic.camera.CameraArtifacts``: noise, blur, vignetting, exposure, tone curve,
JPEG, sub-pixel rectification error; numpy samples only) as the last step. Randomness comes
from a numpy Generator (torch noise is drawn on the batch's device from a generator seeded by
it), so runs are reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from depth_ros.synthetic.camera import CameraArtifacts
from depth_ros.synthetic.xp import Array, asarray, is_numpy, mean_keepdims, namespace

IMAGE_KEYS = ('image', 'left', 'right')
MAP_KEYS = ('depth', 'depth_right', 'disparity', 'disparity_right', 'valid', 'valid_right',
            'occlusion', 'occlusion_right', 'depth_metric', 'held')
# stereo keys of the left view and their right-view counterparts
STEREO_PAIRS = (('left', 'right'), ('disparity', 'disparity_right'), ('depth', 'depth_right'),
                ('valid', 'valid_right'), ('occlusion', 'occlusion_right'))
Sample = dict[str, Any]


def _axes(x: Array) -> tuple[int, int, int]:
    """(height, width, channel) axes: numpy samples are HWC / HW, torch batches NCHW."""
    return (0, 1, -1) if is_numpy(x) else (-2, -1, 1)


def _spatial(sample: Sample) -> list[str]:
    """Keys of the images and maps present in ``sample``."""
    return [k for k in IMAGE_KEYS + MAP_KEYS if k in sample]


def _select(choice: Any, new: Array, old: Array) -> Array:
    """``new`` where ``choice`` holds: True (numpy sample, or a whole batch), a (B,) bool tensor."""
    if is_numpy(new) or isinstance(choice, bool):
        return new
    return torch.where(choice.reshape(-1, *[1] * (new.dim() - 1)), new, old)


def _batch_size(sample: Sample) -> int | None:
    """B for a torch batch, None for a numpy sample."""
    first = sample[_spatial(sample)[0]]
    return None if is_numpy(first) else int(first.shape[0])


def hflip(sample: Sample, choice: Any = True) -> Sample:
    """Mirror horizontally where ``choice`` (bool, or (B,) bool tensor); stereo views are swapped.

    A stereo sample with 'disparity' but no 'disparity_right' is returned unchanged; other
    left-view maps without a right-view counterpart (e.g. Middlebury's 'occlusion') are dropped
    when flipping. DIW point pairs ('pairs' (K, 4) yA, xA, yB, xB) are mirrored too (numpy).
    """
    stereo = 'left' in sample
    if (stereo and 'disparity' in sample and 'disparity_right' not in sample) or (is_numpy(choice) and not choice):
        return sample
    out = dict(sample)
    for key in _spatial(sample):
        x = sample[key]
        out[key] = namespace(x).flip(x, (_axes(x)[1],))
    if stereo:
        for left, right in STEREO_PAIRS:
            if left in sample and right in sample:
                out[left], out[right] = out[right], out[left]
            elif left in sample or right in sample:
                out.pop(left, None)
                out.pop(right, None)
    if 'pairs' in sample:
        width = sample[_spatial(sample)[0]].shape[1]
        pairs = sample['pairs'].copy()
        pairs[:, [1, 3]] = width - 1 - pairs[:, [1, 3]]
        out['pairs'] = pairs
    for key in _spatial(out):
        out[key] = _select(choice, out[key], sample[key])
    return out


def permute_channels(sample: Sample, perm: Any) -> Sample:
    """Reorder RGB channels of every image: ``perm`` (3,) for a sample, (B, 3) for a batch."""
    out = dict(sample)
    for key in IMAGE_KEYS:
        if key in sample:
            x = sample[key]
            if is_numpy(x):
                out[key] = x[..., np.asarray(perm)]
            else:
                out[key] = x[torch.arange(x.shape[0], device=x.device)[:, None], asarray(perm, x, 'int64')]
    return out


def crop(sample: Sample, top: int, left: int, height: int, width: int) -> Sample:
    """Cut the same window out of every image and map; DIW pairs are shifted, outside ones dropped."""
    out = dict(sample)
    for key in _spatial(sample):
        x = sample[key]
        h_axis, w_axis, _ = _axes(x)
        index = [slice(None)] * x.ndim
        index[h_axis] = slice(top, top + height)
        index[w_axis] = slice(left, left + width)
        out[key] = x[tuple(index)]
    if 'pairs' in sample:
        pairs = sample['pairs'] - np.array([top, left, top, left])
        keep = ((pairs[:, [0, 2]] >= 0) & (pairs[:, [0, 2]] < height)
                & (pairs[:, [1, 3]] >= 0) & (pairs[:, [1, 3]] < width)).all(1)
        out['pairs'], out['ordinal'] = pairs[keep], sample['ordinal'][keep]
    return out


def _per_sample(values: np.ndarray, like: Array) -> Array:
    """Per-sample parameters (n,) or (n, 3) shaped to broadcast over ``like``'s images."""
    if is_numpy(like):
        return values.reshape(1, 1, -1).astype(np.float32)
    return asarray(values, like).reshape(values.shape[0], -1, 1, 1)


def _gaussian_like(x: Array, rng: np.random.Generator) -> Array:
    """Standard normal noise shaped like ``x`` (drawn on ``x``'s device for tensors)."""
    if is_numpy(x):
        return rng.standard_normal(x.shape, dtype=np.float32)
    generator = torch.Generator(device=x.device)
    generator.manual_seed(int(rng.integers(1 << 62)))
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@dataclass
class Photometric:
    """Ranges of the photometric jitter (multipliers unless stated)."""

    brightness: tuple[float, float] = (0.7, 1.3)
    contrast: tuple[float, float] = (0.7, 1.3)
    gamma: tuple[float, float] = (0.8, 1.25)
    color: tuple[float, float] = (0.85, 1.15)    # per-channel gain
    noise: tuple[float, float] = (0.0, 0.03)     # gaussian sigma, in [0, 1] image units
    stereo: float = 0.05                         # relative left/right variation of each factor

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Parameters for n images: 'brightness', 'contrast', 'gamma', 'noise' (n,), 'color' (n, 3)."""
        return {'brightness': rng.uniform(*self.brightness, n), 'contrast': rng.uniform(*self.contrast, n),
                'gamma': np.exp(rng.uniform(*np.log(self.gamma), n)), 'noise': rng.uniform(*self.noise, n),
                'color': rng.uniform(*self.color, (n, 3))}

    def vary(self, params: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The other view's parameters: each factor moved by up to +-``stereo`` (relative)."""
        return {k: v if k == 'noise' else v * (1.0 + rng.uniform(-self.stereo, self.stereo, v.shape))
                for k, v in params.items()}

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """Jitter every image of a sample (numpy, images become float32 in [0, 1]) or batch (torch)."""
        keys = [k for k in IMAGE_KEYS if k in sample]
        n = _batch_size(sample) or 1
        params = self.sample(rng, n)
        out = dict(sample)
        for key in keys:
            out[key] = apply_photometric(sample[key], self.vary(params, rng) if key == 'right' else params, rng)
        return out


def apply_photometric(image: Array, params: dict[str, np.ndarray], rng: np.random.Generator) -> Array:
    """Gamma, colour x brightness, contrast about the mean, gaussian noise, clip to [0, 1]."""
    xp = namespace(image)
    x = image.astype(np.float32) / 255.0 if is_numpy(image) and image.dtype == np.uint8 else image
    h_axis, w_axis, c_axis = _axes(x)
    x = xp.clip(x, 0.0, 1.0) ** _per_sample(params['gamma'], x)
    x = x * (_per_sample(params['color'], x) * _per_sample(params['brightness'], x))
    mean = mean_keepdims(x, tuple(sorted(a % x.ndim for a in (h_axis, w_axis, c_axis))))
    x = mean + (x - mean) * _per_sample(params['contrast'], x)
    x = x + _gaussian_like(x, rng) * _per_sample(params['noise'], x)
    return xp.clip(x, 0.0, 1.0)


@dataclass
class Augment:
    """A random augmentation pipeline: ``Augment(crop=(256, 512))(sample_or_batch, rng)``.

    Probabilities are per sample; a crop window is drawn per call (numpy: per sample, torch:
    one window for the batch). ``camera`` (numpy samples only) runs after the photometric jitter.
    """

    crop: tuple[int, int] | None = None     # (height, width)
    hflip: float = 0.5
    channel_permutation: float = 0.5
    photometric: Photometric | None = None
    camera: CameraArtifacts | None = None

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        n = _batch_size(sample)
        draws = rng.random((2, n or 1))
        if self.crop is not None:
            x = sample[_spatial(sample)[0]]
            h_axis, w_axis, _ = _axes(x)
            height, width = x.shape[h_axis], x.shape[w_axis]
            if height < self.crop[0] or width < self.crop[1]:
                raise ValueError(f'crop {self.crop} is larger than the sample ({height}, {width})')
            sample = crop(sample, int(rng.integers(height - self.crop[0] + 1)),
                          int(rng.integers(width - self.crop[1] + 1)), *self.crop)
        flips = draws[0] < self.hflip
        sample = hflip(sample, bool(flips[0]) if n is None else _flags(flips, sample))
        perms = np.stack([rng.permutation(3) if d < self.channel_permutation else np.arange(3) for d in draws[1]])
        sample = permute_channels(sample, perms[0] if n is None else perms)
        if self.photometric is not None:
            sample = self.photometric(sample, rng)
        if self.camera is not None:
            if n is not None:
                raise TypeError('camera artifacts apply to numpy samples, not torch batches')
            sample = self.camera(sample, rng)
        return sample


def _flags(values: np.ndarray, sample: Sample) -> Array:
    """(B,) bool numpy -> tensor on the batch's device."""
    return asarray(values, sample[_spatial(sample)[0]], 'bool')
