"""Synthetic datasets rendered once to disk with the numpy renderer, read back as a Reader.

Without a GPU the torch renderer is the bottleneck of training (it is 4-5x slower than numpy
on a CPU); rendering a fixed set once in parallel processes and training several epochs over it
with crops and augmentation is far cheaper. Each sample is one ``.npz`` file:

- stereo: 'left', 'right' (H, W, 3) uint8 RGB; 'disparity', 'disparity_right' uint16 px * 256
  (0 = invalid: nothing hit or beyond max_disparity); 'fx', 'baseline';
- mono: 'image'; 'depth' uint16 mm (0 = invalid); 'fx'; 'held' the held object's pixels (content
  'held' / 'boards' only; bits packed along rows; read as a float 0/1 map, zeros without it).

The reader (``rendered:<folder>`` in training recipes) returns the usual float samples with NaN
invalid, so mono training converts to the canonical camera with each sample's fx.

    depth-ros-render stereo out/stereo --n 4000 --size 256 512
    depth-ros-render textures                       # the photo bank (~/.cache/depth_ros/textures)
    depth-ros-render stereo out/real --textures --hfov 15 100 --content rich
        # photos on half the surfaces, narrow lenses too, thin structures and real-size objects

``--textures`` maps photographs of the bank onto a share of the surfaces (``--photo-prob``),
``--hfov`` sets the range of horizontal fields of view (narrow lenses = long focal lengths).
Camera artifacts (noise, blur, JPEG ...) are applied on the fly in training (``data.augment.camera``).
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from depth_ros.synthetic import nearest_baseline, render_pair, render_view, sample_views
from depth_ros.synthetic.sampler import HELD_CONTENTS, held_mask
from depth_ros.synthetic.textures import PhotoBank

from .base import Reader, Sample

CHUNK = 8   # samples rendered per call (one batch of the numpy renderer)


def rgb8(channels: tuple[np.ndarray, ...], i: int) -> np.ndarray:
    """Image ``i`` of a renderer's RGB (3 x (B, H, W) in [0, 1]) as (H, W, 3) uint8."""
    return np.clip(np.rint(np.stack([c[i] for c in channels], -1) * 255.0), 0, 255).astype(np.uint8)


def _fixed_point(values: np.ndarray, scale: float, limit: float) -> np.ndarray:
    """float -> uint16 value*scale, 0 where not finite, <= 0 or >= limit."""
    ok = np.isfinite(values) & (values > 0) & (values < limit)
    return np.where(ok, np.rint(values * scale), 0).astype(np.uint16)


@dataclass(frozen=True)
class Look:
    """How the scenes look: the camera's field of view range, the photo textures (``textures``: a
    bank folder, '' for procedural textures only) and the content ('basic' | 'rich' | 'held' | 'boards', see
    ``depth_ros.synthetic.sample_scenes``)."""

    hfov: tuple[float, float] = (45.0, 100.0)   # degrees
    textures: str = ''
    photo_prob: float = 0.5
    content: str = 'basic'


@lru_cache(maxsize=2)
def load_bank(folder: str) -> PhotoBank:
    """The photo bank of ``folder`` (loaded once per process); an error if it is empty."""
    bank = PhotoBank.load(Path(folder))
    if bank is None:
        raise FileNotFoundError(f'no textures in {folder}: run depth-ros-render textures first')
    return bank


def _render_chunk(task: tuple[str, str, int, int, int, int, float, Look]) -> int:
    """Render samples [start, start + CHUNK) of a dataset into ``root`` (one process)."""
    kind, root, seed, start, height, width, max_disparity, look = task
    rng = np.random.default_rng(np.random.SeedSequence([seed, start]))
    scene, view = sample_views(rng, CHUNK, height, width, hfov_deg=look.hfov, content=look.content,
                               photos=load_bank(look.textures) if look.textures else None)
    fx = view['fx']
    if kind == 'stereo':
        share = rng.uniform(0.1, 0.9, CHUNK).astype(np.float32)
        baseline = nearest_baseline(share, fx, max_disparity)
        out = render_pair(scene, baseline=baseline, **view)
        for i in range(CHUNK):
            np.savez(Path(root) / f'{start + i:06d}.npz', left=rgb8(out['left'], i), right=rgb8(out['right'], i),
                     disparity=_fixed_point(out['disparity'][i], 256.0, max_disparity),
                     disparity_right=_fixed_point(out['disparity_right'][i], 256.0, max_disparity),
                     fx=np.float32(fx[i]), baseline=np.float32(out['baseline'][i]))
    else:
        depth, rgb = render_view(scene, **view)
        held = held_mask(scene, view, depth) if look.content in HELD_CONTENTS else None
        for i in range(CHUNK):
            extra = {} if held is None else {'held': np.packbits(held[i], axis=-1)}
            np.savez(Path(root) / f'{start + i:06d}.npz', image=rgb8(rgb, i),
                     depth=_fixed_point(depth[i], 1000.0, 65.535), fx=np.float32(fx[i]), **extra)
    return CHUNK


def render_dataset(root: str | os.PathLike, kind: str, n: int, size: tuple[int, int], seed: int = 0,
                   max_disparity: float = 192.0, workers: int = os.cpu_count() or 1, look: Look = Look()) -> Path:
    """Render ``n`` (rounded up to a multiple of 8) samples of ``kind`` ('stereo' | 'mono') at
    ``size`` (H, W) into ``root`` with ``workers`` processes; the same seed gives the same set.
    Samples already on disk are kept, so an interrupted render can be resumed."""
    if kind not in ('stereo', 'mono'):
        raise ValueError(f"kind must be 'stereo' or 'mono', not {kind!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta = {'kind': kind, 'n': CHUNK * math.ceil(n / CHUNK), 'size': list(size), 'seed': seed,
            'max_disparity': max_disparity, **asdict(look)}
    (root / 'dataset.json').write_text(json.dumps(meta, indent=2) + '\n')
    tasks = [(kind, str(root), seed, s, size[0], size[1], max_disparity, look) for s in range(0, meta['n'], CHUNK)
             if not (root / f'{s + CHUNK - 1:06d}.npz').exists()]
    if workers <= 1:  # in this process: no child to start
        for task in tasks:
            _render_chunk(task)
        return root
    # spawned, not forked: a child forked from a process with threads (torch, ROS executors, BLAS)
    # can deadlock on a lock one of those threads held (seen: a test's render hung for good)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context('spawn')) as pool:
        for _ in pool.map(_render_chunk, tasks):
            pass
    return root


class Rendered(Reader):
    """A folder written by ``render_dataset`` (``dataset.json`` + ``NNNNNN.npz``)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        meta_path = self.root / 'dataset.json'
        if not meta_path.is_file():
            raise FileNotFoundError(f'{meta_path} not found: render the dataset first (depth-ros-render)')
        self.meta = json.loads(meta_path.read_text())
        self.kind = self.meta['kind']
        super().__init__(sorted(self.root.glob('*.npz')))

    def load(self, item: Path) -> Sample:
        with np.load(item) as z:
            sample: Sample = {'fx': float(z['fx']), 'path': str(item)}
            if self.kind == 'stereo':
                sample.update(left=z['left'], right=z['right'], baseline=float(z['baseline']))
                for key in ('disparity', 'disparity_right'):
                    raw = z[key]
                    sample[key] = np.where(raw > 0, raw.astype(np.float32) / 256.0, np.float32(np.nan))
            else:
                raw = z['depth']
                depth = np.where(raw > 0, raw.astype(np.float32) / 1000.0, np.float32(np.nan))
                held = (np.unpackbits(z['held'], axis=-1, count=depth.shape[1]) if 'held' in z
                        else np.zeros(depth.shape, np.uint8))
                sample.update(image=z['image'], depth=depth, held=held.astype(np.float32))
        return sample
