"""SceneFlow (FlyingThings3D, Monkaa, Driving): PNG frames and PFM disparities of both views."""
from __future__ import annotations

from pathlib import Path

from .base import Reader, Sample, find
from .io import PathLike, read_pfm, read_rgb


def _other_view(path: Path, view: str) -> Path:
    """``path`` with its 'left' directory component replaced by ``view``."""
    parts = list(path.parts)
    index = len(parts) - 1 - parts[::-1].index('left')
    parts[index] = view
    return Path(*parts)


class SceneFlow(Reader):
    """``root`` holds ``frames_cleanpass`` (or ``frames_finalpass`` with ``render_pass='final'``)
    and ``disparity``, with the same sub-paths: ``.../left/<n>.png`` <-> ``.../left/<n>.pfm``
    (and ``right``). ``split`` ('train' / 'test') keeps paths with a TRAIN / TEST component
    (FlyingThings3D). fx is 1050 px (450 px for Driving's 15 mm focal length); the baseline is
    1 Blender unit, not metric, so it is not given."""

    kind = 'stereo'

    def __init__(self, root: PathLike, render_pass: str = 'clean', split: str | None = None) -> None:
        self.root = Path(root)
        self.frames = self.root / f'frames_{render_pass}pass'
        lefts = [p for p in find(self.frames, '**/left/*.png')
                 if split is None or split.upper() in p.relative_to(self.frames).parts]
        super().__init__(lefts)

    def load(self, item: Path) -> Sample:
        disparity = (self.root / 'disparity' / item.relative_to(self.frames)).with_suffix('.pfm')
        sample: Sample = {'left': read_rgb(item), 'right': read_rgb(_other_view(item, 'right')),
                          'disparity': read_pfm(disparity), 'path': str(item),
                          'fx': 450.0 if '15mm_focallength' in item.parts else 1050.0}
        right = _other_view(disparity, 'right')
        if right.exists():
            sample['disparity_right'] = read_pfm(right)
        return sample
