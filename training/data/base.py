"""Reader base class and the thin torch Dataset wrapper.

A reader is a sequence of numpy samples (dicts); invalid ground truth is NaN everywhere:
- mono: 'image' (H, W, 3) uint8 RGB, 'depth' (H, W) float32 m, 'fx' px (if known);
- stereo: 'left', 'right', 'disparity' (H, W) float32 px of the left view, 'fx', 'baseline' m
  (if known), optional 'disparity_right';
- relative (DIW): 'image', 'pairs' (K, 4) int (yA, xA, yB, xB) pixels, 'ordinal' (K,) int:
  +1 point A is closer than B, -1 farther, 0 same depth.
Every sample also has 'path' (str), the main file it was read from.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

Sample = dict[str, Any]


class Reader(Sequence[Sample]):
    """A dataset on disk: ``len(reader)``, ``reader[i]`` -> sample dict (numpy)."""

    kind = 'mono'   # 'mono' | 'stereo' | 'relative'

    def __init__(self, items: list[Any]) -> None:
        if not items:
            raise FileNotFoundError(f'{type(self).__name__}: no samples found')
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.load(self.items[index])

    def load(self, item: Any) -> Sample:
        """The sample described by one entry of ``items``."""
        raise NotImplementedError


def find(root: Path, pattern: str) -> list[Path]:
    """Files under ``root`` matching a glob ``pattern`` (recursive with '**'), sorted."""
    if not root.is_dir():
        raise FileNotFoundError(f'{root} is not a directory')
    return sorted(root.glob(pattern))


def to_tensors(sample: Sample) -> Sample:
    """numpy sample -> torch: images (3, H, W) float32 in [0, 1], maps (1, H, W), numbers as
    0-d tensors, other arrays as tensors; strings stay."""
    out: Sample = {}
    for key, value in sample.items():
        if isinstance(value, np.ndarray) and value.ndim == 3 and value.shape[-1] == 3:
            image = torch.from_numpy(np.ascontiguousarray(value.transpose(2, 0, 1)))
            out[key] = image.float() / 255.0 if value.dtype == np.uint8 else image.float()
        elif isinstance(value, np.ndarray) and value.ndim == 2 and key != 'pairs':
            out[key] = torch.from_numpy(np.ascontiguousarray(value))[None]
        elif isinstance(value, np.ndarray):
            out[key] = torch.from_numpy(np.ascontiguousarray(value))
        elif isinstance(value, (int, float, np.number)):
            out[key] = torch.tensor(value)
        else:
            out[key] = value
    return out


def collate(samples: list[Sample]) -> Sample:
    """Stack tensors of equal shapes into batches; keep lists for the rest (strings, DIW pairs)."""
    out: Sample = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        same = all(isinstance(v, torch.Tensor) and v.shape == values[0].shape for v in values)
        out[key] = torch.stack(values) if same else values
    return out


class TorchDataset(Dataset):
    """A reader as a torch Dataset of tensor samples, with an optional numpy-side transform
    ``transform(sample, rng) -> sample`` (e.g. ``augment.Augment``). Each worker process draws
    its own random stream, seeded from torch's per-worker seed."""

    def __init__(self, reader: Reader,
                 transform: Callable[[Sample, np.random.Generator], Sample] | None = None) -> None:
        self.reader, self.transform = reader, transform
        self._rng: np.random.Generator | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> Sample:
        sample = self.reader[index]
        if self.transform is not None:
            if self._pid != os.getpid():
                self._rng, self._pid = np.random.default_rng(torch.initial_seed()), os.getpid()
            sample = self.transform(sample, self._rng)
        return to_tensors(sample)
