"""PNG figures of a run: curves (matplotlib when installed, else OpenCV) and sample panels.

Sample figures use :mod:`depth_ros.viz` (input / prediction / ground truth with one colour
scale per row, invalid pixels black).
"""
from __future__ import annotations

import math
from pathlib import Path
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from depth_ros import viz

Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]  # label -> (x, y)
Row = tuple[np.ndarray, Sequence[tuple[str, np.ndarray]], np.ndarray | None]  # image, [(label, map)], ground truth
COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
          (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # RGB


def _finite(x: Sequence[float], y: Sequence[float], log_x: bool, log_y: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if log_x:
        keep &= x > 0
    if log_y:
        keep &= y > 0
    return x[keep], y[keep]


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:  # decades, or 1-2-5 steps when the range spans less than two decades
        mantissas = (1,) if hi - lo >= 2 else (1, 2, 5)
        return [m * 10.0 ** e for e in range(math.floor(lo), math.ceil(hi) + 1) for m in mantissas
                if lo <= e + math.log10(m) <= hi]
    step = 10 ** math.floor(math.log10(max(hi - lo, 1e-12) / 4))
    step *= next(m for m in (1, 2, 5, 10) if (hi - lo) / (step * m) <= 6)
    return list(np.arange(math.ceil(lo / step) * step, hi + step * 1e-6, step))


def _plot_opencv(series: Series, title: str, xlabel: str, log_x: bool, log_y: bool,
                 size: tuple[int, int]) -> np.ndarray:
    """Axes, ticks, one polyline per series and a legend, drawn with OpenCV; (H, W, 3) RGB."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 70, 20, 30, 45
    tx = (lambda v: np.log10(v)) if log_x else (lambda v: v)
    ty = (lambda v: np.log10(v)) if log_y else (lambda v: v)
    data = {k: _finite(x, y, log_x, log_y) for k, (x, y) in series.items()}
    data = {k: (tx(x), ty(y)) for k, (x, y) in data.items() if x.size}
    cv2.putText(img, title, (left, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, xlabel, (w // 2 - 20, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    if not data:
        return img
    xs = np.concatenate([x for x, _ in data.values()])
    ys = np.concatenate([y for _, y in data.values()])
    x0, x1 = float(xs.min()), float(xs.max()) + (1e-9 if xs.min() == xs.max() else 0)
    pad = 0.05 * max(float(ys.max() - ys.min()), 1e-9)
    y0, y1 = float(ys.min()) - pad, float(ys.max()) + pad

    def px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u = left + (x - x0) / (x1 - x0) * (w - left - right)
        v = h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)
        return np.stack([u, v], -1).round().astype(np.int32)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for t in _ticks(y0, y1, log_y):
        v = int(px(np.array([x0]), np.array([np.log10(t) if log_y else t]))[0, 1])
        if top <= v <= h - bottom:
            cv2.line(img, (left, v), (w - right, v), (225, 225, 225), 1)
            cv2.putText(img, f'{t:.3g}', (4, v + 4), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    for t in _ticks(x0, x1, log_x):
        u = int(px(np.array([np.log10(t) if log_x else t]), np.array([y0]))[0, 0])
        if left <= u <= w - right:
            cv2.putText(img, f'{t:.3g}', (u - 12, h - bottom + 15), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (label, (x, y)) in enumerate(data.items()):
        color = COLORS[i % len(COLORS)]
        cv2.polylines(img, [px(x, y).reshape(-1, 1, 2)], False, color, 1, cv2.LINE_AA)
        cv2.putText(img, label, (w - right - 150, top + 16 + 16 * i), font, 0.42, color, 1, cv2.LINE_AA)
    return img


def line_plot(path: str | Path, series: Series, title: str = '', xlabel: str = 'step',
              log_x: bool = False, log_y: bool = False, size: tuple[int, int] = (720, 420),
              marker: tuple[float, float] | None = None) -> Path:
    """Write a PNG line plot of ``series`` (matplotlib if installed, else OpenCV); ``marker``
    (x, y) highlights one point (e.g. the LR finder's suggestion)."""
    path = Path(path)
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        if marker is not None:
            series = {**series, 'suggested': ([marker[0]] * 2, [marker[1]] * 2)}
        return viz.write_image(path, _plot_opencv(series, title, xlabel, log_x, log_y, size))
    fig, ax = plt.subplots(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    for label, (x, y) in series.items():
        ax.plot(*_finite(x, y, log_x, log_y), label=label, linewidth=1)
    if marker is not None:
        ax.plot([marker[0]], [marker[1]], 'o', color='red', label='suggested')
    ax.set_xscale('log' if log_x else 'linear')
    ax.set_yscale('log' if log_y else 'linear')
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """(3, H, W) or (H, W, 3) float in [0, 1] (or uint8) -> (H, W, 3) uint8."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def comparison_rows(rows: Sequence[Row], unit: str = 'm') -> list[tuple[str, np.ndarray]]:
    """Panels for :func:`depth_ros.viz.tile`: per row the input image, every (label, map) and the
    ground truth (if any), all maps of a row coloured on the same range (ground truth first)."""
    panels: list[tuple[str, np.ndarray]] = []
    for image, maps, gt in rows:
        lo, hi = viz.depth_range(*([gt] if gt is not None else [m for _, m in maps]))
        panels.append(('input', to_rgb8(image)))
        panels += [(f'{label} [{lo:.3g}-{hi:.3g} {unit}]', viz.colorize_depth(m, lo, hi)) for label, m in maps]
        if gt is not None:
            panels.append(('ground truth', viz.colorize_depth(gt, lo, hi)))
    return panels


def sample_figure(path: str | Path, rows: Sequence[Row], title: str = '', unit: str = 'm',
                  cell: tuple[int, int] = (256, 160)) -> Path:
    """PNG of input / prediction(s) / ground truth rows (see :func:`comparison_rows`)."""
    panels = comparison_rows(rows, unit)
    columns = len(panels) // max(len(rows), 1)
    return viz.write_image(path, viz.tile(panels, columns, cell, title))
