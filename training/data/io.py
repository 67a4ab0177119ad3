"""File formats shared by the dataset readers: images, 16-bit PNGs, PFM, calibration text."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

PathLike = str | Path


def read_rgb(path: PathLike) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (grey and 16-bit images are converted)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'cannot read image {path}')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_png16(path: PathLike) -> np.ndarray:
    """A single-channel 16-bit PNG as (H, W) uint16."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f'cannot read image {path}')
    if image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(f'{path}: expected a single-channel 16-bit PNG, got {image.dtype} {image.shape}')
    return image


def scaled_depth(raw: np.ndarray, scale: float) -> np.ndarray:
    """Integer-coded maps (0 = invalid) -> float32 ``raw / scale`` with NaN where invalid."""
    return np.where(raw > 0, raw.astype(np.float32) / scale, np.nan).astype(np.float32)


def read_pfm(path: PathLike) -> np.ndarray:
    """A PFM file as float32 (H, W) ('Pf') or (H, W, 3) ('PF'), top row first.

    PFM stores rows bottom-up; a negative scale means little-endian data, positive big-endian.
    """
    data = Path(path).read_bytes()
    header = re.match(rb'(P[Ff])\s+(\d+)\s+(\d+)\s+(\S+)\s', data)
    if header is None:
        raise ValueError(f'{path}: not a PFM file')
    channels = 3 if header.group(1) == b'PF' else 1
    width, height, scale = int(header.group(2)), int(header.group(3)), float(header.group(4))
    dtype = np.dtype('<f4' if scale < 0 else '>f4')
    count = width * height * channels
    values = np.frombuffer(data, dtype=dtype, count=count, offset=header.end())
    image = values.reshape(height, width, channels)[::-1].astype(np.float32)
    return image[..., 0] if channels == 1 else image


def read_calib(path: PathLike) -> dict[str, np.ndarray | str]:
    """``key: values`` (KITTI) or ``key=values`` (Middlebury) lines -> numbers as float64 arrays
    (brackets and ';' row separators are ignored), anything else as a string."""
    entries: dict[str, np.ndarray | str] = {}
    for line in Path(path).read_text().splitlines():
        match = re.match(r'\s*([^:=\s]+)\s*[:=]\s*(.*)$', line)
        if match is None:
            continue
        key, text = match.group(1), match.group(2).strip()
        try:
            entries[key] = np.array([float(v) for v in re.split(r'[\s;\[\]]+', text) if v], dtype=np.float64)
        except ValueError:
            entries[key] = text
    return entries
