"""Synthetic stereo and mono batches rendered by torch on the training device.

The geometry is ``depth_ros.synthetic`` (exact ray casting; the same code the ROS demo camera
runs on numpy). Scenes and cameras are sampled on the CPU with numpy (cheap, vectorized over
the batch), everything per pixel runs on ``device``.

- ``SyntheticStereo``: 'left', 'right' (B, 3, H, W) in [0, 1]; 'disparity', 'disparity_right'
  (B, 1, H, W) px (NaN where invalid); 'valid', 'valid_right' (finite and below max_disparity),
  'occlusion', 'occlusion_right' (B, 1, H, W) bool; 'depth', 'depth_right' (B, 1, H, W) m;
  'fx', 'baseline' (B,). The baseline is chosen per pair from the left depth so that the
  nearest point gets a random share ``reach`` of ``max_disparity`` (spreading disparities over
  the whole range), kept within ``baseline`` (0.05-0.5 m) unless that would break the hard limit:
  every left disparity stays below ``max_disparity``.
- ``SyntheticMono``: 'image' (B, 3, H, W); 'depth' (B, 1, H, W) in the CANONICAL camera,
  depth * f_canonical / fx (so one network serves any focal length); 'depth_metric' (m);
  'valid'; 'fx' (B,); 'f_canonical' (float); with content 'held' / 'boards' also 'held' (B, 1, H, W)
  float 0/1, the held object's pixels (``sampler.held_mask``, a second render), as the renders store.

``next_batch`` draws from the training stream (seeded); ``validation_batches`` is a fixed
held-out set from its own seed, without photometric jitter; ``dataset`` wraps the stream as an
IterableDataset of ready batches (use ``DataLoader(ds, batch_size=None)`` or iterate it).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

from depth_ros.synthetic import nearest_baseline, render_pair, render_view, sample_views
from depth_ros.synthetic.sampler import HELD_CONTENTS, held_mask
from depth_ros.synthetic.scene import Scene
from depth_ros.synthetic.textures import PhotoBank

from .augment import Photometric

VALIDATION_SEED = 20240917
DEFAULT_PHOTOMETRIC = Photometric()  # the jitter a source applies unless told otherwise (one shared instance)
_TRAIN_STREAM, _VALIDATION_STREAM = 0, 1
Batch = dict[str, Any]


def bank_on(photos: PhotoBank, device: str | torch.device) -> PhotoBank:
    """``photos`` with its texels as a tensor on ``device`` (no copy when they are there already)."""
    return PhotoBank(torch.as_tensor(photos.texels, device=device), photos.size, photos.count)


class _SyntheticSource:
    """Shared scene / camera sampling of the synthetic datasets."""

    def __init__(self, height: int, width: int, device: str | torch.device = 'cpu', seed: int = 0, *,
                 indoor_prob: float = 0.6, hfov_deg: tuple[float, float] = (45.0, 100.0),
                 photometric: Photometric | None = DEFAULT_PHOTOMETRIC, photos: PhotoBank | None = None,
                 content: str = 'basic') -> None:
        self.height, self.width = height, width
        self.device = torch.device(device)
        self.indoor_prob, self.hfov_deg, self.content = indoor_prob, hfov_deg, content
        self.photos = None if photos is None else bank_on(photos, self.device)   # scenes index it
        self.photometric = photometric
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, _TRAIN_STREAM]))

    def _upload(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Host arrays -> tensors on the device in ONE copy (pinned and asynchronous on CUDA, so
        rendering never waits for queued training work); bool arrays stay bool."""
        flat = torch.from_numpy(np.concatenate([np.asarray(a, np.float32).ravel() for a in arrays.values()]))
        cuda = self.device.type == 'cuda'
        data = flat.pin_memory().to(self.device, non_blocking=True) if cuda else flat.to(self.device)
        out, start = {}, 0
        for name, a in arrays.items():
            part = data[start:start + a.size].reshape(a.shape)
            out[name] = part > 0.5 if a.dtype == bool else part
            start += a.size
        return out

    def _setup(self, rng: np.random.Generator, n: int,
               **extra: np.ndarray) -> tuple[Scene, dict[str, torch.Tensor], dict[str, Any]]:
        """Scenes, intrinsics (+ ``extra`` arrays) on the device and the kwargs of the renderer
        (camera at the scene origin, the scene itself is randomly turned; no culling)."""
        scene, view = sample_views(rng, n, self.height, self.width, indoor_prob=self.indoor_prob,
                                   hfov_deg=self.hfov_deg, photos=self.photos, content=self.content)
        cams = {k: view[k] for k in ('fx', 'fy', 'cx', 'cy')}
        up = self._upload({**scene.arrays(), **cams, **extra})
        view.update({k: up[k] for k in cams}, origin=torch.zeros(n, 3, device=self.device),
                    rot=torch.eye(3, device=self.device).expand(n, 3, 3).contiguous())
        return replace(scene, **{name: up[name] for name in scene.arrays()}), up, view

    def _render(self, rng: np.random.Generator, n: int, photometric: Photometric | None) -> Batch:
        raise NotImplementedError

    def next_batch(self, batch_size: int) -> Batch:
        """The next training batch (photometric jitter applied if configured)."""
        with torch.no_grad():
            return self._render(self.rng, batch_size, self.photometric)

    def validation_batches(self, num_batches: int, batch_size: int, seed: int = VALIDATION_SEED) -> list[Batch]:
        """A fixed held-out set: the same batches for the same seed, disjoint from the training stream."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, _VALIDATION_STREAM]))
        with torch.no_grad():
            return [self._render(rng, batch_size, None) for _ in range(num_batches)]

    def dataset(self, batch_size: int, num_batches: int | None = None) -> SyntheticBatches:
        """The training stream as an IterableDataset of batches (endless if ``num_batches`` is None)."""
        return SyntheticBatches(self, batch_size, num_batches)


class SyntheticStereo(_SyntheticSource):
    """Batches of rectified stereo pairs with exact disparity (see the module docstring)."""

    def __init__(self, height: int, width: int, device: str | torch.device = 'cpu', seed: int = 0,
                 max_disparity: float = 192.0, *, baseline: tuple[float, float] = (0.05, 0.5),
                 reach: tuple[float, float] = (0.1, 0.9), **options: Any) -> None:
        super().__init__(height, width, device, seed, **options)
        self.max_disparity = float(max_disparity)
        self.baseline, self.reach = baseline, reach

    def _render(self, rng: np.random.Generator, n: int, photometric: Photometric | None) -> Batch:
        scene, up, view = self._setup(rng, n, share=rng.uniform(*self.reach, n))
        baseline = nearest_baseline(up['share'], up['fx'], self.max_disparity, self.baseline)
        out = render_pair(scene, baseline=baseline, **view)
        batch: Batch = {'left': torch.stack(out['left'], 1), 'right': torch.stack(out['right'], 1),
                        'fx': up['fx'], 'baseline': out['baseline']}
        for side in ('', '_right'):
            depth, disparity = out['depth' + side][:, None], out['disparity' + side][:, None]
            valid = torch.isfinite(depth) & (disparity < self.max_disparity)
            batch['disparity' + side] = torch.where(valid, disparity, math.nan)
            batch['depth' + side] = torch.where(torch.isfinite(depth), depth, math.nan)
            batch['valid' + side] = valid
            batch['occlusion' + side] = out['occlusion' + side][:, None]
        return batch if photometric is None else photometric(batch, rng)


class SyntheticMono(_SyntheticSource):
    """Batches of single images with exact depth in the canonical camera (see the module docstring).

    ``f_canonical`` (px at the render size) defaults to the focal length of a 70 degree
    horizontal field of view, the middle of the sampled range.
    """

    def __init__(self, height: int, width: int, device: str | torch.device = 'cpu', seed: int = 0,
                 f_canonical: float | None = None, **options: Any) -> None:
        super().__init__(height, width, device, seed, **options)
        self.f_canonical = float(f_canonical or 0.5 * width / math.tan(math.radians(35.0)))

    def _render(self, rng: np.random.Generator, n: int, photometric: Photometric | None) -> Batch:
        scene, up, view = self._setup(rng, n)
        depth, rgb = render_view(scene, **view)
        depth = torch.where(torch.isfinite(depth), depth, math.nan)[:, None]
        canonical = depth * (self.f_canonical / up['fx'])[:, None, None, None]
        batch: Batch = {'image': torch.stack(rgb, 1), 'depth': canonical, 'depth_metric': depth,
                        'valid': torch.isfinite(depth), 'fx': up['fx'], 'f_canonical': self.f_canonical}
        if self.content in HELD_CONTENTS:
            batch['held'] = held_mask(scene, view, depth[:, 0])[:, None].float()
        return batch if photometric is None else photometric(batch, rng)


class SyntheticBatches(IterableDataset):
    """Ready-made batches from a synthetic source; ``len`` is defined when ``num_batches`` is."""

    def __init__(self, source: _SyntheticSource, batch_size: int, num_batches: int | None = None) -> None:
        super().__init__()
        self.source, self.batch_size, self.num_batches = source, batch_size, num_batches

    def __iter__(self) -> Iterator[Batch]:
        produced = 0
        while self.num_batches is None or produced < self.num_batches:
            yield self.source.next_batch(self.batch_size)
            produced += 1

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError('an endless synthetic stream has no length')
        return self.num_batches
