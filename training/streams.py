"""Endless, resumable batch streams for the trainer, and the fixed validation batches.

``data.source`` is 'synthetic' (the torch scene renderer, batches made on the training device)
or '<reader>:<path>' (a dataset reader, see :mod:`.reader_stream`). Every stream has
``next_batch()``, ``iters_per_epoch``, ``state_dict()`` / ``load_state_dict()`` (exact
resume) and ``skip_to(step)`` (approximate resume after a change in the number of processes).

Synthetic batch ``i`` of rank ``r`` is rendered from the seed (seed, r, i) alone, so a resumed
run draws exactly the batches it would have drawn, and every DDP rank draws different ones.
``data.augment`` keys: hflip, channel_permutation (probabilities), photometric (bool, default
true), camera (bool, default false: imperfect-camera artifacts, reader sources only), applied
with the same per-batch seed.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any
from collections.abc import Callable

import numpy as np
import torch

from depth_ros.synthetic.textures import CACHE, PhotoBank

from .config import TrainConfig
from .data.augment import Augment
from .data.rendered import load_bank
from .data.synth import SyntheticMono, SyntheticStereo, bank_on
from .stream_setup import make_augment, parse_source, stream_seed
from .tasks import sample_depth_pairs

Batch = dict[str, Any]


@lru_cache(maxsize=2)
def device_bank(device: str) -> PhotoBank:
    """The texture cache's photographs (``load_bank``) on ``device``, once per process: the engine made
    for every batch uses these texels as they are instead of copying them to the device again."""
    return bank_on(load_bank(str(CACHE)), device)


def synthetic_engine(cfg: TrainConfig, kind: str, device: torch.device, seed: int) -> SyntheticStereo | SyntheticMono:
    """The renderer for ``kind`` at the training size with ``data.content``, ``data.hfov`` and (if
    ``data.textures``) the photographs (photometric jitter is done by Augment)."""
    d = cfg.data
    look = dict(photometric=None, content=d.content, hfov_deg=(float(d.hfov[0]), float(d.hfov[1])),
                photos=device_bank(str(device)) if d.textures else None)
    if kind == 'stereo':
        return SyntheticStereo(d.height, d.width, device, seed, d.max_disparity, **look)
    return SyntheticMono(d.height, d.width, device, seed, d.f_canonical or None, **look)


class SyntheticStream:
    """Batches of ``batch_size`` rendered by ``make_engine(seed)`` with seed (seed, rank, index)."""

    def __init__(self, make_engine: Callable[[int], Any], batch_size: int, seed: int, rank: int,
                 iters_per_epoch: int, augment: Augment):
        self.make_engine, self.batch_size, self.seed, self.rank = make_engine, batch_size, seed, rank
        self.iters_per_epoch, self.augment = iters_per_epoch, augment
        self.index = 0

    def next_batch(self) -> Batch:
        seed = stream_seed(self.seed, self.rank, self.index)
        self.index += 1
        batch = self.make_engine(seed).next_batch(self.batch_size)
        return self.augment(batch, np.random.default_rng(seed))

    def state_dict(self) -> dict[str, int]:
        return {'index': self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.index = int(state['index'])

    def skip_to(self, step: int) -> None:
        self.index = step


def train_stream(cfg: TrainConfig, kind: str, device: torch.device, rank: int = 0, world: int = 1) -> Any:
    """The training stream of this process (rank ``rank`` of ``world``)."""
    name, path = parse_source(cfg.data.source)
    if name != 'synthetic':
        from .reader_stream import ReaderStream
        return ReaderStream(cfg, kind, name, path, device, rank, world)
    if cfg.data.augment.get('camera'):
        raise ValueError("data.augment.camera applies to rendered/reader sources (numpy samples), not to "
                         "data.source 'synthetic' (torch batches): render first (depth-ros-render)")
    iters = max(1, cfg.data.epoch_size // (cfg.data.batch_size * world))
    return SyntheticStream(lambda seed: synthetic_engine(cfg, kind, device, seed), cfg.data.batch_size,
                           cfg.system.seed, rank, iters, make_augment(cfg.data.augment))


def add_pairs(batch: Batch, k: int, equal: float, seed: int) -> Batch:
    """``batch`` with 'pairs' (B, K, 5) sampled from its dense 'depth' by a seeded CPU generator."""
    gen = torch.Generator().manual_seed(seed)
    valid = batch.get('valid')
    pairs = sample_depth_pairs(batch['depth'].cpu(), None if valid is None else valid.cpu(), k, equal, gen)
    return {**batch, 'pairs': pairs.to(batch['depth'].device)}


def validation_batches(cfg: TrainConfig, kind: str, device: torch.device) -> list[Batch]:
    """The fixed held-out batches of ``data.val_source`` (default: the training source's
    held-out split); mono batches with dense depth also get fixed relative-depth pairs (WHDR)."""
    d = cfg.data
    name, path = parse_source(d.val_source or d.source)
    if name == 'synthetic':
        engine = synthetic_engine(cfg, kind, device, cfg.system.seed)
        batches = engine.validation_batches(d.val_batches, d.val_batch_size)
    else:
        from .reader_stream import reader_validation_batches
        batches = reader_validation_batches(cfg, kind, name, path, device)
    if kind == 'mono':
        batches = [add_pairs(b, d.pairs, d.pair_equal, i) if 'depth' in b and 'pairs' not in b else b
                   for i, b in enumerate(batches)]
    return batches
