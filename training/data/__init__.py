"""Datasets: the synthetic scene engine on torch and readers for the standard formats.

- ``synth``: ``SyntheticStereo`` / ``SyntheticMono`` batches rendered on the training device;
- readers (numpy samples, NaN = invalid, see ``base``): NYU Depth V2 (.mat and folder form),
  DIODE, KITTI stereo 2015, KITTI depth, SceneFlow, Middlebury, DIW; ``open_reader(name, path)``
  builds one by its name in ``READERS``; ``TorchDataset`` + ``collate`` feed a DataLoader;
- ``augment``: flips (stereo: mirror and swap), channel permutation, crops, photometric jitter.
"""
from typing import Any

from .augment import Augment, Photometric
from .base import Reader, TorchDataset, collate, to_tensors
from .diode import DIODE
from .diw import DIW
from .kitti import KITTIDepth, KITTIStereo2015
from .middlebury import Middlebury
from .nyu import NYUv2Folder, NYUv2Mat
from .rendered import Rendered
from .sceneflow import SceneFlow
from .synth import SyntheticMono, SyntheticStereo

READERS: dict[str, type[Reader]] = {
    'nyu_mat': NYUv2Mat, 'nyu': NYUv2Folder, 'diode': DIODE, 'kitti_stereo': KITTIStereo2015,
    'kitti_depth': KITTIDepth, 'sceneflow': SceneFlow, 'middlebury': Middlebury, 'diw': DIW,
    'rendered': Rendered,
}


def open_reader(name: str, path: str, **options: Any) -> Reader:
    """The reader ``READERS[name]`` on ``path`` (a folder, or the file for 'nyu_mat' and 'diw')."""
    if name not in READERS:
        raise ValueError(f'unknown reader {name!r}; known: {", ".join(sorted(READERS))}')
    return READERS[name](path, **options)


__all__ = ['Augment', 'DIODE', 'DIW', 'KITTIDepth', 'KITTIStereo2015', 'Middlebury', 'NYUv2Folder', 'NYUv2Mat',
           'Photometric', 'READERS', 'Reader', 'Rendered', 'SceneFlow', 'SyntheticMono', 'SyntheticStereo',
           'TorchDataset', 'collate', 'open_reader', 'to_tensors']
