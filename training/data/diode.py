"""DIODE: ``<name>.png`` with ``<name>_depth.npy`` (H, W, 1) metres and ``<name>_depth_mask.npy``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Reader, Sample, find
from .io import PathLike, read_rgb

DIODE_FX, DIODE_WIDTH = 886.81, 1024   # the scanner's focal length (px) at 1024x768 (DIODE intrinsics)


class DIODE(Reader):
    """Every ``*_depth.npy`` under ``root`` (point it at e.g. ``val/indoors``); pixels outside
    the mask or with depth <= 0 are NaN."""

    def __init__(self, root: PathLike) -> None:
        super().__init__(find(Path(root), '**/*_depth.npy'))

    def load(self, item: Path) -> Sample:
        stem = str(item)[:-len('_depth.npy')]
        image = read_rgb(stem + '.png')
        depth = np.load(item).astype(np.float32).reshape(image.shape[:2])
        mask = np.load(stem + '_depth_mask.npy').reshape(image.shape[:2]) > 0
        return {'image': image, 'depth': np.where(mask & (depth > 0), depth, np.nan).astype(np.float32),
                'fx': DIODE_FX * image.shape[1] / DIODE_WIDTH, 'path': stem + '.png'}
