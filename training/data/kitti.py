"""KITTI stereo 2015 (``image_2``/``image_3``/``disp_occ_0``) and KITTI depth (``proj_depth``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Reader, Sample, find
from .io import PathLike, read_calib, read_png16, read_rgb, scaled_depth


def rectified_stereo(calib: dict[str, np.ndarray | str]) -> tuple[float, float]:
    """(fx px, baseline m) of cameras 2 and 3 from 'P_rect_02'/'P_rect_03' (calib_cam_to_cam)
    or 'P2'/'P3' (object-detection calib): P[0, 3] = -fx * (x position of the camera)."""
    for left, right in (('P_rect_02', 'P_rect_03'), ('P2', 'P3')):
        if left in calib and right in calib:
            p2, p3 = np.asarray(calib[left]), np.asarray(calib[right])
            return float(p2[0]), float((p2[3] - p3[3]) / p2[0])
    raise KeyError('no P_rect_02/P_rect_03 or P2/P3 in the calibration')


class KITTIStereo2015(Reader):
    """``root`` is e.g. ``data_scene_flow/training``: left ``image_2/*_10.png``, right
    ``image_3``, disparity ``disp_occ_0`` (or ``disp_noc_0`` with ``occluded=False``) uint16 / 256
    with 0 = invalid (absent for the test split). fx and baseline come from
    ``calib_cam_to_cam/<id>.txt`` or ``calib/<id>.txt`` when present. KITTI has no right-view
    disparity, so the stereo flip augmentation skips these samples."""

    kind = 'stereo'

    def __init__(self, root: PathLike, occluded: bool = True) -> None:
        self.root = Path(root)
        self.disparity_dir = 'disp_occ_0' if occluded else 'disp_noc_0'
        super().__init__(find(self.root / 'image_2', '*_10.png'))

    def load(self, item: Path) -> Sample:
        frame = item.stem[:-len('_10')]
        sample: Sample = {'left': read_rgb(item), 'right': read_rgb(self.root / 'image_3' / item.name),
                          'path': str(item)}
        disparity = self.root / self.disparity_dir / item.name
        if disparity.exists():
            sample['disparity'] = scaled_depth(read_png16(disparity), 256.0)
        for folder in ('calib_cam_to_cam', 'calib'):
            calib = self.root / folder / f'{frame}.txt'
            if calib.exists():
                sample['fx'], sample['baseline'] = rectified_stereo(read_calib(calib))
                break
        return sample


class KITTIDepth(Reader):
    """KITTI depth completion ground truth ``<drive>/proj_depth/groundtruth/image_02/<frame>.png``
    (uint16 / 256 metres, 0 = invalid) under ``root``, with the images of the raw dataset:
    ``<raw_root>/<date>/<drive>/image_02/data/<frame>.png`` (``raw_root`` defaults to ``root``;
    ``<raw_root>/<drive>/...`` is tried too). fx comes from ``<raw_root>/<date>/calib_cam_to_cam.txt``."""

    def __init__(self, root: PathLike, raw_root: PathLike | None = None, camera: str = 'image_02') -> None:
        self.raw_root = Path(raw_root if raw_root is not None else root)
        self.camera = camera
        super().__init__(find(Path(root), f'**/proj_depth/groundtruth/{camera}/*.png'))

    def load(self, item: Path) -> Sample:
        drive = item.parents[3].name                      # e.g. 2011_09_26_drive_0001_sync
        date = drive[:10]
        candidates = [self.raw_root / date / drive, self.raw_root / drive]
        folder = next((c for c in candidates if (c / self.camera / 'data' / item.name).exists()), None)
        if folder is None:
            raise FileNotFoundError(f'no raw image for {item} under {self.raw_root}')
        sample: Sample = {'image': read_rgb(folder / self.camera / 'data' / item.name),
                          'depth': scaled_depth(read_png16(item), 256.0), 'path': str(item)}
        calib = self.raw_root / date / 'calib_cam_to_cam.txt'
        if calib.exists():
            sample['fx'] = float(np.asarray(read_calib(calib)[f'P_rect_{self.camera[-2:]}'])[0])
        return sample
