"""DIW (Depth in the Wild) relative depth: a CSV of image paths, each followed by point pairs."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .base import Reader, Sample
from .io import PathLike, read_rgb

# DIW's relation compares depths: '<' = point A nearer than B. 'ordinal' +1 means A is closer.
ORDINAL = {'<': 1, '>': -1, '=': 0}


class DIW(Reader):
    """``DIW_train.csv`` style annotations: a row with the image path, then one row per pair
    ``y_A, x_A, y_B, x_B, relation, image_width, image_height`` with 1-based coordinates in an
    image of that size. Samples give 'pairs' (K, 4) int (yA, xA, yB, xB) in the loaded image's
    0-based pixels and 'ordinal' (K,) int (+1 A closer, -1 A farther, 0 equal). Relative image
    paths are resolved against ``image_root`` (default: the CSV's folder)."""

    kind = 'relative'

    def __init__(self, csv_path: PathLike, image_root: PathLike | None = None) -> None:
        csv_path = Path(csv_path)
        root = Path(image_root) if image_root is not None else csv_path.parent
        items: list[tuple[Path, list[list[str]]]] = []
        with open(csv_path, newline='') as f:
            for row in csv.reader(f):
                cells = [c.strip() for c in row]
                if not cells or not cells[0]:
                    continue
                if _is_number(cells[0]):
                    if not items:
                        raise ValueError(f'{csv_path}: point pair before any image path')
                    items[-1][1].append(cells)
                else:
                    items.append((root / cells[0], []))
        super().__init__(items)

    def load(self, item: tuple[Path, list[list[str]]]) -> Sample:
        path, rows = item
        image = read_rgb(path)
        height, width = image.shape[:2]
        pairs = np.zeros((len(rows), 4), dtype=np.int64)
        for k, row in enumerate(rows):
            w_csv, h_csv = float(row[5]), float(row[6])
            for j, (value, size, size_csv) in enumerate(zip(row[:4], (height, width) * 2, (h_csv, w_csv) * 2)):
                pairs[k, j] = min(max(int(np.floor((float(value) - 1.0) * size / size_csv)), 0), size - 1)
        ordinal = np.array([ORDINAL[row[4]] for row in rows], dtype=np.int64)
        return {'image': image, 'pairs': pairs, 'ordinal': ordinal, 'path': str(path)}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
