"""Texture bank of real photographs for the synthetic scenes (numpy + OpenCV).

``collect`` copies square crops of the photographs that installed packages ship (Debian
wallpapers and backgrounds, OpenCV's sample images, scikit-image's, scikit-learn's and
matplotlib's sample photographs when those are installed) into a cache folder
(``~/.cache/depth_ros/textures``, not git): ``depth-ros-render textures``. Sets reserved for
independent evaluation and the real-camera check's images never enter it (``DENY``).

``PhotoBank.load()`` reads the cache back as an atlas with a mip pyramid per photo, which the
renderer samples in surface coordinates (``texture.photo_color``), so both views of a pair see
the same surface, and a coarser level where a texel is smaller than a pixel (no aliasing).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CACHE = Path(os.environ.get('DEPTH_ROS_TEXTURES', Path.home() / '.cache' / 'depth_ros' / 'textures'))
SIZE = 256                      # texels per side of a bank texture
# folders searched; python packages' sample-data folders are added when the package is installed
SYSTEM_DIRS = ('/usr/share/backgrounds', '/usr/share/wallpapers', '/usr/share/images/desktop-base',
               '/usr/share/doc/opencv-doc/examples/data')
PACKAGE_DIRS = {'skimage': 'data', 'sklearn': 'datasets/images', 'matplotlib': 'mpl-data/sample_data'}
# reserved for independent evaluation (scikit-image's stereo data, OpenCV's aloe images), the real-camera
# check (OpenCV's stereo calibration shots left01..right14), other stereo / ground-truth images, and
# drawings, charts and logos that are not photographs of the world
DENY = re.compile(r'aloe|motorcycle|stereo|disp|tsukuba|(^|[^a-z])gt([^a-z]|$)|^(left|right)\d*\.|'
                  r'logo|chessboard|board|calib|sudoku|digits|text|alphabet|notes|cards|gradient|mask|ellipses|'
                  r'pic\d|graf|detect_blob|letter|tmpl|templ|data\d|ml\.png|box|hand|pca_test|rubberwhale|basketball',
                  re.IGNORECASE)
SUFFIXES = ('.jpg', '.jpeg', '.png')


def source_dirs() -> list[Path]:
    """Existing folders to collect from."""
    dirs = [Path(d) for d in SYSTEM_DIRS]
    for package, sub in PACKAGE_DIRS.items():
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            dirs.append(Path(spec.origin).parent / sub)
    return [d for d in dirs if d.is_dir()]


def candidates(dirs: list[Path] | None = None) -> list[Path]:
    """Image files under ``dirs`` that are not denied, sorted."""
    found = []
    for d in source_dirs() if dirs is None else dirs:
        found += [p for p in d.rglob('*') if p.suffix.lower() in SUFFIXES and not DENY.search(p.name)]
    return sorted(set(found))


def _crops(image: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to 4 random square crops (larger images give more), resized to ``size``; none if the image is
    too small or flat (a logo or a plain background)."""
    h, w = image.shape[:2]
    side = min(h, w)
    if side < 192 or image.std() < 20.0:
        return []
    count = int(np.clip(h * w // (3 * side * side) + 1, 1, 4))
    out = []
    for _ in range(count):
        crop = int(side * rng.uniform(0.5, 1.0)) if count > 1 else side
        y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        patch = cv2.resize(image[y:y + crop, x:x + crop], (size, size), interpolation=cv2.INTER_AREA)
        if patch.std() >= 12.0:
            out.append(patch)
    return out


def collect(dest: Path = CACHE, dirs: list[Path] | None = None, size: int = SIZE, seed: int = 0) -> int:
    """Write square crops of every usable photograph into ``dest`` (``NNNN.png`` + ``index.json``
    naming each crop's source); returns the number of textures. Replaces an earlier bank."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob('*.png'):
        old.unlink()
    rng = np.random.default_rng(seed)
    index = []
    for path in candidates(dirs):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        for crop in _crops(image, size, rng):
            cv2.imwrite(str(dest / f'{len(index):04d}.png'), crop)
            index.append(str(path))
    (dest / 'index.json').write_text(json.dumps({'size': size, 'sources': index}, indent=1) + '\n')
    return len(index)


@dataclass
class PhotoBank:
    """Photographs as one flat texel table with a mip pyramid per photo (see ``texture.photo_color``).

    ``texels`` (3, count * per_photo) float32 RGB in [0, 1] (channel-major, numpy or a torch tensor
    on the rendering device): photo t's level l (side size >> l) starts at column
    t * per_photo + level_offsets[l], row-major.
    """

    texels: np.ndarray
    size: int
    count: int

    @property
    def levels(self) -> int:
        """Mip levels, down to 1x1."""
        return self.size.bit_length()

    @staticmethod
    def level_offsets(size: int) -> list[int]:
        """First row of each level inside one photo's block."""
        sides = [size >> level for level in range(size.bit_length())]
        return [int(v) for v in np.cumsum([0] + [s * s for s in sides[:-1]])]

    @staticmethod
    def per_photo(size: int) -> int:
        """Rows of one photo's block (all levels)."""
        return sum((size >> level) ** 2 for level in range(size.bit_length()))

    @classmethod
    def from_images(cls, images: list[np.ndarray]) -> PhotoBank:
        """From square (S, S, 3) uint8 RGB images, S a power of two."""
        size = images[0].shape[0]
        if size & (size - 1) or any(im.shape != (size, size, 3) for im in images):
            raise ValueError(f'bank images must all be (S, S, 3) with S a power of two, got {images[0].shape}')
        blocks = []
        for image in images:
            level = image.astype(np.float32) / 255.0
            for _ in range(size.bit_length()):
                blocks.append(level.reshape(-1, 3))
                if level.shape[0] > 1:
                    level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return cls(np.ascontiguousarray(np.concatenate(blocks).T), size, len(images))

    @classmethod
    def load(cls, root: Path = CACHE, limit: int | None = None) -> PhotoBank | None:
        """The bank in ``root`` (None when it was not collected: the renderer then uses procedural textures only)."""
        files = sorted(Path(root).glob('*.png'))[:limit]
        if not files:
            return None
        return cls.from_images([cv2.imread(str(p), cv2.IMREAD_COLOR)[..., ::-1] for p in files])
