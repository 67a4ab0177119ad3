"""Middlebury stereo (2014 / 2021 / eval3): one folder per scene with im0, im1, disparities, calib."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .base import Reader, Sample, find
from .io import PathLike, read_calib, read_pfm, read_rgb


def _disparity(path: Path) -> np.ndarray:
    """A Middlebury PFM disparity with inf (unknown) as NaN."""
    disparity = read_pfm(path)
    return np.where(np.isfinite(disparity), disparity, np.nan).astype(np.float32)


class Middlebury(Reader):
    """Every folder under ``root`` with ``im0.png``: 'left' = im0, 'right' = im1, 'disparity' from
    ``disp0GT.pfm`` (eval3) or ``disp0.pfm`` (2014), 'disparity_right' from ``disp1.pfm`` when
    present, 'occlusion' from ``mask0nocc.png`` (128 = occluded) when present. ``calib.txt``
    gives 'fx' (cam0[0, 0], px), 'baseline' (mm -> m), 'doffs' (px, the x difference of the
    principal points: depth = baseline * fx / (disparity + doffs)) and 'ndisp'."""

    kind = 'stereo'

    def __init__(self, root: PathLike) -> None:
        super().__init__([p.parent for p in find(Path(root), '**/im0.png')])

    def load(self, item: Path) -> Sample:
        sample: Sample = {'left': read_rgb(item / 'im0.png'), 'right': read_rgb(item / 'im1.png'), 'path': str(item)}
        for name in ('disp0GT.pfm', 'disp0.pfm'):
            if (item / name).exists():
                sample['disparity'] = _disparity(item / name)
                break
        if (item / 'disp1.pfm').exists():
            sample['disparity_right'] = _disparity(item / 'disp1.pfm')
        if (item / 'mask0nocc.png').exists():
            sample['occlusion'] = cv2.imread(str(item / 'mask0nocc.png'), cv2.IMREAD_GRAYSCALE) == 128
        if (item / 'calib.txt').exists():
            calib = {k: np.asarray(v) for k, v in read_calib(item / 'calib.txt').items()}
            sample.update(fx=float(calib['cam0'][0]), baseline=float(calib['baseline'][0]) / 1000.0,
                          doffs=float(calib['doffs'][0]), ndisp=int(calib['ndisp'][0]))
        return sample
