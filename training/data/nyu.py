"""NYU Depth V2: the labeled .mat file and the folder form (``*_colors.png`` + ``*_depth.png``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np

from .base import Reader, Sample, find
from .io import PathLike, read_png16, read_rgb, scaled_depth

NYU_FX, NYU_WIDTH = 518.8579, 640   # Kinect colour camera focal (px) at 640x480 (NYU toolbox camera_params.m)


class NYUv2Mat(Reader):
    """``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with h5py): 'images' (N, 3, W, H)
    uint8 and 'depths' (N, W, H) float metres, i.e. MATLAB's arrays transposed. ``indices``
    picks a subset (e.g. the official test split)."""

    def __init__(self, path: PathLike, indices: Sequence[int] | None = None) -> None:
        import h5py  # the `train` extra; only this reader needs it

        self.path = Path(path)
        with h5py.File(self.path, 'r') as f:
            images, depths = f['images'], f['depths']
            if images.ndim != 4 or images.shape[1] != 3 or depths.shape != (images.shape[0],) + images.shape[2:]:
                raise ValueError(f'{path}: unexpected NYU layout images {images.shape} depths {depths.shape}')
            count = images.shape[0]
        super().__init__(list(range(count)) if indices is None else [int(i) for i in indices])
        self._file: Any = None
        self._pid = -1

    def load(self, item: int) -> Sample:
        if self._pid != os.getpid():      # an HDF5 handle must not cross a fork (DataLoader workers)
            import h5py
            self._file, self._pid = h5py.File(self.path, 'r'), os.getpid()
        image = np.ascontiguousarray(self._file['images'][item].transpose(2, 1, 0))
        depth = self._file['depths'][item].T.astype(np.float32)
        return {'image': image, 'depth': np.where(depth > 0, depth, np.nan).astype(np.float32),
                'fx': NYU_FX, 'path': f'{self.path}:{item}'}


class NYUv2Folder(Reader):
    """Folders of ``<name>_colors.png`` with ``<name>_depth.png`` (uint16 millimetres, 0 = invalid).
    fx is the Kinect's, scaled to the image width."""

    def __init__(self, root: PathLike) -> None:
        super().__init__(find(Path(root), '**/*_colors.png'))

    def load(self, item: Path) -> Sample:
        image = read_rgb(item)
        depth = scaled_depth(read_png16(item.with_name(item.name.replace('_colors.png', '_depth.png'))), 1000.0)
        return {'image': image, 'depth': depth, 'fx': NYU_FX * image.shape[1] / NYU_WIDTH, 'path': str(item)}
