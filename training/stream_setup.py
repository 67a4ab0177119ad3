"""What the synthetic and the reader streams share: ``data.source`` parsing, per-sample seeds
and the ``data.augment`` options."""
from __future__ import annotations

from typing import Any

import numpy as np

from depth_ros.synthetic.camera import CameraArtifacts

from .data import READERS
from .data.augment import Augment, Photometric

AUGMENT_KEYS = ('hflip', 'channel_permutation', 'photometric', 'camera')


def parse_source(source: str) -> tuple[str, str]:
    """'synthetic' -> ('synthetic', ''); '<reader>:<path>' -> (reader, path), the reader one of
    ``data.READERS``; ValueError (naming the readers) otherwise."""
    if source == 'synthetic':
        return source, ''
    name, sep, path = source.partition(':')
    readers = ', '.join(sorted(READERS))
    if not sep or not name or not path:
        raise ValueError(f"data source must be 'synthetic' or '<reader>:<path>' (readers: {readers}), "
                         f'not {source!r}')
    if name not in READERS:
        raise ValueError(f'unknown reader {name!r} in {source!r}; readers: {readers}')
    return name, path


def stream_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (numpy SeedSequence)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def make_augment(options: dict[str, Any], crop: tuple[int, int] | None = None) -> Augment:
    """An Augment from ``data.augment`` (hflip / channel_permutation probabilities, default 0;
    photometric bool, default true; camera bool, default false: imperfect-camera artifacts) with an
    optional random ``crop`` (height, width)."""
    unknown = sorted(set(options) - set(AUGMENT_KEYS))
    if unknown:
        raise ValueError(f'unknown data.augment keys {unknown}; known: {", ".join(AUGMENT_KEYS)}')
    return Augment(crop=crop, hflip=float(options.get('hflip', 0.0)),
                   channel_permutation=float(options.get('channel_permutation', 0.0)),
                   photometric=Photometric() if options.get('photometric', True) else None,
                   camera=CameraArtifacts() if options.get('camera', False) else None)
