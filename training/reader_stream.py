"""Batches from dataset readers ('<reader>:<path>' sources) for training and evaluation.

Readers (:mod:`.data`) give numpy samples at their native size. For training each sample is
resized (``data.resize`` factor, or exactly to ``data.resize_to``), converted to the
canonical camera (depth * f_canonical / fx, when both are known), randomly cropped to
``data.height`` x ``data.width`` and augmented; validation samples are center-cropped.
Relative-depth samples (DIW) get their pixel pairs as normalised (K, 5) rows padded with NaN
to ``data.pairs`` rows.

Without ``data.val_source`` a fixed 10 % of the reader (a seeded permutation, independent of
the run's seed) is held out for validation and never trained on. Sample ``i`` of an epoch is
augmented with the seed (seed, epoch, i), and the stream's state is (epoch, batches read), so a
resumed run reads exactly the batches it would have read.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from depth_ros.metrics import normalize_pairs

from .config import TrainConfig
from .data import open_reader
from .data.augment import crop
from .data.base import collate, to_tensors
from .stream_setup import make_augment, stream_seed

VAL_FRACTION, SPLIT_SEED = 0.1, 20240917
Sample = dict[str, Any]
KEEP = {'mono': ('image', 'depth', 'pairs', 'held'), 'stereo': ('left', 'right', 'disparity', 'disparity_right')}


def split_indices(n: int, split: str) -> list[int]:
    """Sample indices of 'train' (90 %), 'val' (the held-out 10 %) or 'all', in file order."""
    if split == 'all':
        return list(range(n))
    if split not in ('train', 'val'):
        raise ValueError(f"split must be 'train', 'val' or 'all', not {split!r}")
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_val = max(1, round(VAL_FRACTION * n)) if n > 1 else 0
    chosen = perm[:n_val] if split == 'val' else perm[n_val:]
    return sorted(int(i) for i in chosen)


def resize_sample(sample: Sample, size: tuple[int, int]) -> Sample:
    """Resize images (area / bilinear) and maps (nearest) to ``size`` (H, W); disparities and
    fx scale with the width, DIW pixel pairs with both axes."""
    h0, w0 = next(sample[k] for k in ('image', 'left') if k in sample).shape[:2]
    sy, sx = size[0] / h0, size[1] / w0
    out = dict(sample)
    for key, value in sample.items():
        if not isinstance(value, np.ndarray) or value.ndim not in (2, 3) or value.shape[:2] != (h0, w0):
            continue
        interp = cv2.INTER_NEAREST if value.ndim == 2 else (cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
        out[key] = cv2.resize(value, (size[1], size[0]), interpolation=interp)
        if key.startswith('disparity'):
            out[key] = out[key] * np.float32(sx)
    if 'fx' in sample and sample['fx'] is not None:
        out['fx'] = float(sample['fx']) * sx
    if 'pairs' in sample:
        out['pairs'] = np.floor((sample['pairs'] + 0.5) * np.array([sy, sx, sy, sx])).astype(np.int64)
    return out


def normalised_pairs(sample: Sample, k: int) -> np.ndarray:
    """(k, 5) rows (y_i, x_i, y_j, x_j, r) in (pixel + 0.5) / size coordinates from a DIW
    sample's pixel 'pairs' and 'ordinal'; the first k pairs, NaN rows after the last."""
    rows = np.concatenate([sample['pairs'][:k], np.reshape(sample['ordinal'][:k], (-1, 1))], axis=1)
    out = np.full((k, 5), np.nan, np.float32)
    out[:len(rows)] = normalize_pairs(rows, sample['image'].shape[:2])
    return out


class Preparer:
    """Turns a reader sample into a training / validation sample of the configured size."""

    def __init__(self, cfg: TrainConfig, kind: str, train: bool):
        d = cfg.data
        self.kind, self.train = kind, train
        self.size = (d.height, d.width)
        self.resize_to = tuple(d.resize_to) if d.resize_to else None
        self.resize, self.f_canonical, self.pairs = d.resize, d.f_canonical, d.pairs
        self.augment = make_augment(d.augment, None if self.resize_to else self.size) if train else None

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h0, w0 = next(sample[k] for k in ('image', 'left') if k in sample).shape[:2]
        if self.resize_to or self.resize != 1.0:
            sample = resize_sample(sample, self.resize_to or (round(h0 * self.resize), round(w0 * self.resize)))
        if self.kind == 'mono' and 'depth' in sample and self.f_canonical and sample.get('fx'):
            sample = {**sample, 'depth': sample['depth'] * np.float32(self.f_canonical / sample['fx'])}
        if self.augment is not None:
            sample = self.augment(sample, rng)
        elif not self.resize_to:
            h, w = next(sample[k] for k in ('image', 'left') if k in sample).shape[:2]
            sample = crop(sample, (h - self.size[0]) // 2, (w - self.size[1]) // 2, *self.size)
        if 'pairs' in sample:
            sample = {**sample, 'pairs': normalised_pairs(sample, max(self.pairs, 1))}
        return {k: v for k, v in sample.items() if k in KEEP[self.kind]}


class _Prepared(Dataset):
    """reader[index] prepared with the seed that comes with the index: keys are (index, seed)."""

    def __init__(self, reader: Any, prepare: Preparer):
        self.reader, self.prepare = reader, prepare

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        index, seed = key
        return to_tensors(self.prepare(self.reader[index], np.random.default_rng(seed)))


def _to_device(batch: Sample, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}


class ReaderStream:
    """Endless shuffled batches of a reader's training split; rank r of w reads every w-th sample."""

    def __init__(self, cfg: TrainConfig, kind: str, name: str, path: str, device: torch.device,
                 rank: int = 0, world: int = 1):
        self.cfg, self.device, self.rank, self.world = cfg, device, rank, world
        reader = open_reader(name, path)
        self.indices = split_indices(len(reader), 'all' if cfg.data.val_source else 'train')
        self.dataset = _Prepared(reader, Preparer(cfg, kind, train=True))
        self.batch_size = cfg.data.batch_size
        self.iters_per_epoch = len(self.indices) // world // self.batch_size
        if self.iters_per_epoch < 1:
            raise ValueError(f'{name}:{path} has {len(self.indices)} training samples: fewer than '
                             f'{world} process(es) x batch {self.batch_size}')
        self.epoch, self.position = 0, 0
        self._iter = None

    def _keys(self) -> list[tuple[int, int]]:
        """(sample index, augmentation seed) of this rank's remaining samples of the epoch."""
        perm = np.random.default_rng(stream_seed(self.cfg.system.seed, self.epoch)).permutation(len(self.indices))
        mine = perm[self.rank::self.world][:self.iters_per_epoch * self.batch_size]
        return [(self.indices[i], stream_seed(self.cfg.system.seed, self.epoch, int(i)))
                for i in mine[self.position * self.batch_size:]]

    def _start(self) -> None:
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=self._keys(), collate_fn=collate,
                            num_workers=self.cfg.data.workers, drop_last=True, pin_memory=self.device.type == 'cuda')
        self._iter = iter(loader)

    def next_batch(self) -> dict[str, torch.Tensor]:
        if self.position >= self.iters_per_epoch:
            self.epoch, self.position, self._iter = self.epoch + 1, 0, None
        if self._iter is None:
            self._start()
        batch = next(self._iter)
        self.position += 1
        return _to_device(batch, self.device)

    def state_dict(self) -> dict[str, int]:
        return {'epoch': self.epoch, 'position': self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._iter = int(state['epoch']), int(state['position']), None

    def skip_to(self, step: int) -> None:
        self.load_state_dict({'epoch': step // self.iters_per_epoch, 'position': step % self.iters_per_epoch})


def reader_validation_batches(cfg: TrainConfig, kind: str, name: str, path: str,
                              device: torch.device) -> list[dict[str, torch.Tensor]]:
    """The first ``val_batches`` x ``val_batch_size`` validation samples, center-cropped."""
    reader = open_reader(name, path)
    indices = split_indices(len(reader), 'all' if cfg.data.val_source else 'val')
    prepare = Preparer(cfg, kind, train=False)
    n, bs = cfg.data.val_batches * cfg.data.val_batch_size, cfg.data.val_batch_size
    samples = [to_tensors(prepare(reader[i], np.random.default_rng(0))) for i in indices[:n]]
    return [_to_device(collate(samples[i:i + bs]), device) for i in range(0, len(samples), bs)]


def reader_samples(name: str, path: str, kind: str, n: int, split: str) -> list[Sample]:
    """Up to ``n`` native-size samples of a reader split for depth-ros-evaluate / -compare
    (DIW pairs normalised, see :func:`normalised_pairs`)."""
    reader = open_reader(name, path)
    out = []
    for i in split_indices(len(reader), split)[:n]:
        sample = reader[i]
        if 'pairs' in sample:
            sample = {**sample, 'pairs': normalised_pairs(sample, len(sample['pairs'])).astype(np.float64)}
        out.append(sample)
    if kind == 'stereo' and out and 'left' not in out[0]:
        raise ValueError(f'{name} is not a stereo dataset')
    if kind == 'mono' and out and 'image' not in out[0]:
        raise ValueError(f'{name} holds stereo pairs, not mono images with depth (depth-ros-render mono ...)')
    return out
