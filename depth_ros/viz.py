"""Pictures of depth for people (numpy + OpenCV only): coloured depth maps with a colour bar,
point-cloud previews from a virtual viewpoint, and labelled tiled figures.

All images here are (H, W, 3) uint8 RGB; depth maps are (H, W) float metres with NaN (or any
non-finite / non-positive value) invalid; point clouds are in a REP 103 optical frame
(x right, y down, z forward).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence

import cv2
import numpy as np

from . import geometry

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE = (255, 255, 255)
GREY = (128, 128, 128)
Panel = tuple[str, np.ndarray | None]  # (label, image); an image of None: an empty cell


def _valid(depth: np.ndarray) -> np.ndarray:
    d = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid='ignore'):
        return np.isfinite(d) & (d > 0)


def depth_range(*depths: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)) -> tuple[float, float]:
    """Robust colour range (lo, hi) in metres over the valid pixels of all ``depths``
    (the given percentiles); (0, 1) when none is valid; hi > lo always."""
    vals = [np.asarray(d, np.float32)[_valid(d)] for d in depths]
    vals = np.concatenate(vals) if vals else np.empty(0, np.float32)
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(vals, percentiles))
    return lo, max(hi, lo + 1e-3)


def colorize_depth(depth: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """(H, W) depth (m) -> (H, W, 3) uint8 RGB with the turbo colour map, ``lo`` blue to ``hi``
    red (clamped), invalid pixels black. Without ``lo``/``hi`` a robust range is used
    (``depth_range``)."""
    depth = np.asarray(depth, np.float32)
    if depth.ndim != 2:
        raise ValueError(f'expected an (H, W) depth map, got shape {depth.shape}')
    if lo is None or hi is None:
        rlo, rhi = depth_range(depth)
        lo, hi = (rlo if lo is None else lo), (rhi if hi is None else hi)
    if not hi > lo:
        raise ValueError(f'colour range must have hi > lo, got [{lo}, {hi}]')
    valid = _valid(depth)
    scaled = np.clip((np.where(valid, depth, lo) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def _nice_ticks(lo: float, hi: float, count: int = 5) -> np.ndarray:
    """About ``count`` round tick values inside [lo, hi]."""
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10.0 ** np.floor(np.log10(raw))
    step = mag * min((1, 2, 2.5, 5, 10), key=lambda m: abs(m * mag - raw))
    ticks = np.arange(np.ceil(lo / step) * step, hi + step * 1e-6, step)
    return ticks[(ticks >= lo - 1e-9) & (ticks <= hi + 1e-9)]


def color_bar(height: int, lo: float, hi: float, unit: str = 'm', width: int = 84) -> np.ndarray:
    """(height, width, 3) uint8 RGB vertical colour bar of ``colorize_depth``'s map, ``hi`` at
    the top, with round tick labels in ``unit``."""
    if height < 40 or not hi > lo:
        raise ValueError(f'colour bar needs height >= 40 and hi > lo, got {height}, [{lo}, {hi}]')
    pad, strip = 10, 18
    bar = np.zeros((height, width, 3), np.uint8)
    ramp = np.linspace(hi, lo, height - 2 * pad, dtype=np.float32)[:, None].repeat(strip, 1)
    bar[pad:height - pad, 4:4 + strip] = colorize_depth(ramp, lo, hi)
    for t in _nice_ticks(lo, hi):
        y = int(round(pad + (hi - t) / (hi - lo) * (height - 2 * pad - 1)))
        cv2.line(bar, (4 + strip, y), (8 + strip, y), WHITE, 1)
        cv2.putText(bar, f'{t:g} {unit}', (11 + strip, y + 4), FONT, 0.38, WHITE, 1, cv2.LINE_AA)
    return bar


def look_at(eye: Sequence[float], target: Sequence[float],
            up: Sequence[float] = (0.0, -1.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """World-to-view rotation R (3x3) and translation t (3,) of a virtual optical-frame camera
    at ``eye`` looking at ``target`` (p_view = R p + t); ``up`` is the world's up (-y of the
    source camera by default)."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    z = target - eye
    if np.linalg.norm(z) == 0:
        raise ValueError('eye and target must differ')
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError('viewing direction is parallel to up')
    x /= np.linalg.norm(x)
    r = np.stack([x, np.cross(z, x), z])
    return r, -r @ eye


def render_points(points: np.ndarray, colors: np.ndarray, r: np.ndarray, t: np.ndarray,
                  k: np.ndarray, size: tuple[int, int], point_size: int = 2) -> np.ndarray:
    """Splat points into a virtual camera with a z-buffer (nearest point wins).

    points: (..., 3) float xyz (NaN ignored); colors: matching (..., 3) uint8 RGB; r, t: the
    world-to-view transform (``look_at``); k: 3x3 intrinsics; size: (width, height) in px;
    each point covers ``point_size`` x ``point_size`` pixels. Returns (height, width, 3) uint8
    RGB on black.
    """
    w, h = size
    p = np.asarray(points, np.float64).reshape(-1, 3)
    c = np.asarray(colors, np.uint8).reshape(-1, 3)
    if len(p) != len(c):
        raise ValueError(f'{len(p)} points but {len(c)} colours')
    keep = np.isfinite(p).all(axis=1)
    pv = p[keep] @ np.asarray(r, np.float64).T + np.asarray(t, np.float64)
    c = c[keep]
    front = pv[:, 2] > 1e-3
    pv, c = pv[front], c[front]
    uv = geometry.project(pv, k)
    o = (point_size - 1) // 2
    u0 = np.floor(uv[:, 0] + 0.5).astype(np.int64) - o
    v0 = np.floor(uv[:, 1] + 0.5).astype(np.int64) - o
    du, dv = np.meshgrid(np.arange(point_size), np.arange(point_size))
    u = (u0[:, None] + du.ravel()).ravel()
    v = (v0[:, None] + dv.ravel()).ravel()
    z = np.repeat(pv[:, 2], point_size * point_size)
    cols = np.repeat(c, point_size * point_size, axis=0)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    idx, z, cols = v[inside] * w + u[inside], z[inside], cols[inside]
    order = np.lexsort((z, idx))  # by pixel, nearest first
    idx, cols = idx[order], cols[order]
    first = np.ones(len(idx), bool)
    first[1:] = idx[1:] != idx[:-1]
    image = np.zeros((h * w, 3), np.uint8)
    image[idx[first]] = cols[first]
    return image.reshape(h, w, 3)


@dataclass
class View:
    """A virtual camera for point-cloud previews: world-to-view R (3x3), t (3,), intrinsics K
    (3x3), image size (w, h) px, and the size (m) of the source-camera frustum drawn."""
    r: np.ndarray
    t: np.ndarray
    k: np.ndarray
    size: tuple[int, int]
    frustum: float


def _strided(points: np.ndarray, max_points: int) -> np.ndarray:
    """Every n-th point (rows and columns alike for organized clouds) to keep ~max_points."""
    step = max(1, int(np.ceil(np.sqrt(points[..., 0].size / max_points))))
    return points[::step, ::step] if points.ndim == 3 else points[::step ** 2]


def cloud_view(points: np.ndarray, size: tuple[int, int] = (480, 360), azimuth_deg: float = -35.0,
               elevation_deg: float = 25.0) -> View | None:
    """View of a cloud ((..., 3) xyz in the optical frame of the source camera) from above and
    beside the camera: it orbits the cloud's median point by ``azimuth_deg`` (about the up axis,
    negative = to the left) and ``elevation_deg`` (up), and its zoom frames the 1-99 % extent of
    the points plus the source camera. None if no point is finite."""
    flat = _strided(np.asarray(points, np.float32), 80_000).reshape(-1, 3)
    flat = flat[np.isfinite(flat).all(axis=1)]
    if len(flat) == 0:
        return None
    centre = np.median(flat, axis=0)
    dist = max(float(np.linalg.norm(np.percentile(flat, 95, axis=0) - np.percentile(flat, 5, axis=0))), 0.2)
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    # orbit in the source optical frame: behind = -z, up = -y, left = -x
    offset = dist * np.array([np.sin(az) * np.cos(el), -np.sin(el), -np.cos(az) * np.cos(el)])
    r, t = look_at(centre + offset, centre)
    k = _framing(np.vstack([flat, np.zeros((1, 3))]) @ r.T + t, *size)
    return View(r, t, k, tuple(size), 0.08 * dist)


def preview_cloud(points: np.ndarray, colors: np.ndarray, view: View | None = None,
                  size: tuple[int, int] = (480, 360), max_points: int = 80_000) -> np.ndarray:
    """Picture of a cloud ((H, W, 3) organized or (N, 3) xyz, optical frame of the source camera)
    with matching (..., 3) uint8 RGB ``colors``, from ``view`` (default ``cloud_view`` of this
    cloud; pass one view to compare clouds); the source camera is drawn as a white frustum.
    Clouds are strided down to about ``max_points`` points. Returns (h, w, 3) uint8 RGB."""
    pts = np.asarray(points, np.float32)
    cols = np.asarray(colors, np.uint8)
    if pts.shape[:-1] != cols.shape[:-1] or pts.shape[-1] != 3 or cols.shape[-1] != 3:
        raise ValueError(f'points {pts.shape} and colours {cols.shape} must be (..., 3) and match')
    view = view or cloud_view(pts, size)
    if view is None:
        out = np.zeros((size[1], size[0], 3), np.uint8)
        cv2.putText(out, 'no valid points', (10, size[1] // 2), FONT, 0.6, WHITE, 1, cv2.LINE_AA)
        return out
    image = render_points(_strided(pts, max_points), _strided(cols, max_points), view.r, view.t, view.k,
                          view.size, point_size=2)
    _draw_frustum(image, view.r, view.t, view.k, view.frustum)
    return image


def _framing(view_points: np.ndarray, width: int, height: int, margin: float = 0.06) -> np.ndarray:
    """Intrinsics (3x3) that fit the 1-99 % extent of the (N, 3) view-frame points in front of
    the camera into width x height px with a ``margin`` share of border."""
    front = view_points[view_points[:, 2] > 1e-3]
    if len(front) == 0:
        return np.array([[width / 2, 0, width / 2], [0, width / 2, height / 2], [0, 0, 1]])
    xy = front[:, :2] / front[:, 2:3]
    lo = np.minimum(np.percentile(xy, 1, axis=0), xy[-1])  # the last point (source camera) always fits
    hi = np.maximum(np.percentile(xy, 99, axis=0), xy[-1])
    span = np.maximum(hi - lo, 1e-6)
    f = min(width * (1 - 2 * margin) / span[0], height * (1 - 2 * margin) / span[1])
    mid = (lo + hi) / 2
    return np.array([[f, 0, width / 2 - f * mid[0]], [0, f, height / 2 - f * mid[1]], [0, 0, 1]])


def _draw_frustum(image: np.ndarray, r: np.ndarray, t: np.ndarray, k: np.ndarray, scale: float) -> None:
    """Draw the source camera (origin, looking +z) as a small pyramid, in place."""
    corners = scale * np.array([[0, 0, 0], [-0.6, -0.45, 1], [0.6, -0.45, 1], [0.6, 0.45, 1], [-0.6, 0.45, 1]])
    pv = corners @ r.T + t
    if (pv[:, 2] <= 1e-3).any():
        return
    uv = np.round(geometry.project(pv, k)).astype(np.int64)
    if np.abs(uv).max() > 1 << 15:
        return
    pts = [tuple(int(a) for a in p) for p in uv]
    for i in range(1, 5):
        cv2.line(image, pts[0], pts[i], WHITE, 1, cv2.LINE_AA)
        cv2.line(image, pts[i], pts[1 + i % 4], WHITE, 1, cv2.LINE_AA)


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize keeping the aspect ratio and pad with black to exactly width x height."""
    ih, iw = image.shape[:2]
    s = min(width / iw, height / ih)
    nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.zeros((height, width, 3), np.uint8)
    y, x = (height - nh) // 2, (width - nw) // 2
    out[y:y + nh, x:x + nw] = resized
    return out


def text_panel(text: str, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """(h, w, 3) uint8 RGB black panel of ``size`` = (w, h) px with ``text`` in grey, word-wrapped
    and centred (e.g. 'no output' in place of a picture)."""
    w, h = size
    out = np.zeros((h, w, 3), np.uint8)
    lines: list[str] = []
    for word in text.split():
        if lines and cv2.getTextSize(f'{lines[-1]} {word}', FONT, 0.5, 1)[0][0] <= w - 16:
            lines[-1] += f' {word}'
        else:
            lines.append(word)
    y0 = h // 2 - 10 * (len(lines) - 1)
    for i, line in enumerate(lines):
        tw = cv2.getTextSize(line, FONT, 0.5, 1)[0][0]
        cv2.putText(out, line, (max(4, (w - tw) // 2), y0 + 20 * i), FONT, 0.5, GREY, 1, cv2.LINE_AA)
    return out


def _clip_label(label: str, width: int, scale: float = 0.45) -> str:
    """``label`` shortened with '...' to fit ``width`` px at font ``scale``."""
    if cv2.getTextSize(label, FONT, scale, 1)[0][0] <= width:
        return label
    while label and cv2.getTextSize(label + '...', FONT, scale, 1)[0][0] > width:
        label = label[:-1]
    return label + '...'


def tile(panels: Sequence[Panel], columns: int, cell: tuple[int, int] = (320, 240), title: str = '') -> np.ndarray:
    """Figure of labelled panels on a grid: each (label, (h, w, 3) uint8 RGB or (h, w) grey)
    image is fitted into a ``cell`` = (width, height) box under its label (shortened to the
    cell's width), row by row; an image of None leaves the cell empty; an optional ``title``
    line goes on top. Returns (H, W, 3) uint8 RGB."""
    if not panels or columns < 1:
        raise ValueError('need at least one panel and one column')
    cw, ch = cell
    label_h = 22
    rows = -(-len(panels) // columns)
    top = 28 if title else 0
    fig = np.full((top + rows * (ch + label_h), columns * cw, 3), 32, np.uint8)
    if title:
        cv2.putText(fig, _clip_label(title, columns * cw - 16, 0.55), (8, 20), FONT, 0.55, WHITE, 1, cv2.LINE_AA)
    for i, (label, image) in enumerate(panels):
        if image is None:
            continue
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f'panel {label!r} must be a uint8 (H, W) or (H, W, 3) image, '
                             f'got {image.dtype} {image.shape}')
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        y0, x0 = top + (i // columns) * (ch + label_h), (i % columns) * cw
        cv2.putText(fig, _clip_label(label, cw - 10), (x0 + 6, y0 + 16), FONT, 0.45, WHITE, 1, cv2.LINE_AA)
        fig[y0 + label_h:y0 + label_h + ch, x0:x0 + cw] = _fit(image, cw, ch)
        cv2.rectangle(fig, (x0, y0 + label_h), (x0 + cw - 1, y0 + label_h + ch - 1), GREY, 1)
    return fig


def column_layout(count: int, max_columns: int) -> tuple[int, int]:
    """(blocks, columns per block) for ``count`` columns of panels wrapped into blocks of at most
    ``max_columns`` columns, as even as possible (7 columns, at most 5: 2 blocks of 4)."""
    if count < 1 or max_columns < 1:
        raise ValueError(f'need count >= 1 and max_columns >= 1, got {count}, {max_columns}')
    blocks = -(-count // max_columns)
    return blocks, -(-count // blocks)


def column_figure(columns: Sequence[Sequence[Panel]], max_columns: int = 5, lead: int = 0,
                  cell: tuple[int, int] = (320, 240), title: str = '') -> np.ndarray:
    """Figure of panel columns (e.g. each source's depth map above its point cloud) side by side.
    The first ``lead`` columns (e.g. the reference) start every block; the others fill at most
    ``max_columns - lead`` columns per block and wrap into further blocks below, evenly
    (``column_layout``), so the figure stays readable for any number of columns. Columns may
    differ in length (shorter ones leave empty cells). Returns (H, W, 3) uint8 RGB (``tile``)."""
    if not 0 <= lead < max_columns or len(columns) <= lead:
        raise ValueError(f'need 0 <= lead < max_columns and more than lead columns, got {lead}, {max_columns}, '
                         f'{len(columns)}')
    body = list(columns[lead:])
    blocks, width = column_layout(len(body), max_columns - lead)
    rows = max(len(c) for c in columns)
    panels: list[Panel] = []
    for b in range(blocks):
        chunk = list(columns[:lead]) + body[b * width:(b + 1) * width]
        for r in range(rows):
            panels += [c[r] if r < len(c) else ('', None) for c in chunk]
            panels += [('', None)] * (lead + width - len(chunk))
    return tile(panels, lead + width, cell, title)


def write_image(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image (format from the suffix, e.g. .png); OSError if it
    cannot be written."""
    path = Path(path)
    if path.parent != Path('') and not path.parent.is_dir():
        raise OSError(f'cannot write {path}: folder {path.parent} does not exist')
    if not cv2.imwrite(str(path), cv2.cvtColor(np.asarray(rgb, np.uint8), cv2.COLOR_RGB2BGR)):
        raise OSError(f'cannot write {path} (unknown image format or not writable)')
    return path
