"""Evaluation metrics for depth, relative depth and stereo disparity (numpy only).

Conventions
-----------
* ``pred`` and ``gt`` are (H, W) or (N, H, W) float arrays at the same resolution; if the
  network predicts at another resolution, the caller resizes the prediction first.
* Ground truth is invalid where it is NaN/inf or <= 0. An optional boolean ``valid`` mask
  (same shape, or broadcastable) is AND-ed with that, and so are other masks (depth cap,
  finite prediction). A pixel without ground truth is never counted.
* Every metric is computed per image. (H, W) inputs return ``float`` values, (N, H, W)
  inputs return (N,) arrays. An image without any counted pixel gives NaN.
* Relative-depth pairs are (K, 5) or (N, K, 5) arrays of rows ``(y_i, x_i, y_j, x_j, r)``
  with coordinates normalised to [0, 1] (``(pixel + 0.5) / size``, see ``normalize_pairs``)
  and ``r = +1`` if point i is closer to the camera than point j, ``-1`` if farther,
  ``0`` if about equal.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

SSIM_K1, SSIM_K2 = 0.01, 0.03

Metrics = dict[str, float | np.ndarray]


def _batched(*arrays: np.ndarray | None) -> tuple[bool, list[np.ndarray | None]]:
    """(was_2d, arrays as float/bool (N, H, W)); None stays None."""
    ndim = np.ndim(arrays[0])
    if ndim not in (2, 3):
        raise ValueError(f'expected (H, W) or (N, H, W) arrays, got shape {np.shape(arrays[0])}')
    shape = np.shape(arrays[0]) if ndim == 3 else (1, *np.shape(arrays[0]))
    out = [None if a is None else np.broadcast_to(np.asarray(a).reshape((-1, *np.shape(a)[-2:])), shape)
           for a in arrays]
    return ndim == 2, out


def _result(values: Mapping[str, np.ndarray], was_2d: bool) -> Metrics:
    return {k: float(v[0]) if was_2d else np.asarray(v, dtype=np.float64) for k, v in values.items()}


def _masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the last two axes of ``x`` where ``mask``; (N,) with NaN where nothing counts."""
    total = np.where(mask, x, 0.0).sum(axis=(-2, -1), dtype=np.float64)
    count = mask.sum(axis=(-2, -1))
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def valid_gt(gt: np.ndarray, valid: np.ndarray | None = None, max_value: float | None = None) -> np.ndarray:
    """Boolean mask of usable ground truth: finite, > 0, <= ``max_value`` (if given), AND ``valid``."""
    gt = np.asarray(gt, dtype=np.float64)
    with np.errstate(invalid='ignore'):
        mask = np.isfinite(gt) & (gt > 0)
        if max_value is not None:
            mask &= gt <= max_value
    return mask if valid is None else mask & np.asarray(valid, dtype=bool)


# ----------------------------------------------------------------------------- alignment
def _align_factors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (scale, shift), each (N, 1, 1), fitted on ``mask`` pixels."""
    p = np.where(mask, pred, 0.0).astype(np.float64)
    g = np.where(mask, gt, 0.0).astype(np.float64)
    zero = np.zeros(len(p))
    with np.errstate(invalid='ignore', divide='ignore'):
        if mode == 'median':
            nan = np.float64(np.nan)
            scale = (np.nanmedian(np.where(mask, g, nan), axis=(1, 2))
                     / np.nanmedian(np.where(mask, p, nan), axis=(1, 2)))
            shift = zero
        elif mode == 'lsq':
            scale, shift = (p * g).sum((1, 2)) / (p * p).sum((1, 2)), zero
        elif mode == 'lsq_shift':
            n, sp, sg = mask.sum((1, 2)), p.sum((1, 2)), g.sum((1, 2))
            spp, spg = (p * p).sum((1, 2)), (p * g).sum((1, 2))
            det = n * spp - sp * sp
            scale = (n * spg - sp * sg) / det
            shift = (spp * sg - sp * spg) / det
        else:
            raise ValueError(f"align must be None, 'median', 'lsq' or 'lsq_shift', not {mode!r}")
    return scale[:, None, None], shift[:, None, None]


# ----------------------------------------------------------------------------- depth
def align(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, mode: str = 'median') -> np.ndarray:
    """Scale-align a relative prediction to ``gt`` per image, fitted on valid-GT pixels.

    ``mode``: 'median' (s = median(gt) / median(pred)), 'lsq' (least-squares scale) or 'lsq_shift'
    (least-squares scale and shift). The result has the shape and units of ``gt``: align in the
    space the model predicts in (e.g. inverse depth), the caller chooses.
    """
    was_2d, (p, g, v) = _batched(pred, gt, valid)
    mask = valid_gt(g, v) & np.isfinite(p)
    scale, shift = _align_factors(p, g, mask, mode)
    out = p * scale + shift
    return out[0] if was_2d else out


def depth_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, *,
                  max_depth: float | None = None, min_depth: float = 1e-3,
                  align_mode: str | None = None) -> Metrics:
    """Standard monocular depth metrics per image (depths in metres, or any common unit).

    Pixels count where GT is valid (finite, > 0, <= ``max_depth``), ``valid`` is set and the
    prediction is finite. With ``align_mode`` ('median', 'lsq', 'lsq_shift') the prediction is
    first aligned on those pixels: 'median' scales by median(gt) / median(pred), 'lsq' by the
    least-squares scale, 'lsq_shift' fits scale and shift. The prediction is then clipped to
    [``min_depth``, ``max_depth``] (the NYU/KITTI protocol; it also keeps logs finite).

    Returns rmse, mae, absrel, sqrel, rmse_log, log10 (errors, in depth units where they have
    units) and delta1..delta3 (fraction of pixels with max(p/g, g/p) < 1.25^k).
    """
    was_2d, (p, g, v) = _batched(pred, gt, valid)
    p = np.asarray(p, dtype=np.float64)
    mask = valid_gt(g, v, max_depth) & np.isfinite(p)
    g = np.where(mask, g, 1.0)
    if align_mode is not None:
        scale, shift = _align_factors(p, g, mask, align_mode)
        p = p * scale + shift
    p = np.clip(np.where(mask, p, 1.0), min_depth, np.inf if max_depth is None else max_depth)
    err = p - g
    log_err = np.log(p) - np.log(g)
    ratio = np.maximum(p / g, g / p)
    out = {
        'rmse': np.sqrt(_masked_mean(err ** 2, mask)),
        'mae': _masked_mean(np.abs(err), mask),
        'absrel': _masked_mean(np.abs(err) / g, mask),
        'sqrel': _masked_mean(err ** 2 / g, mask),
        'rmse_log': np.sqrt(_masked_mean(log_err ** 2, mask)),
        'log10': _masked_mean(np.abs(log_err) / np.log(10.0), mask),
    }
    for k in (1, 2, 3):
        out[f'delta{k}'] = _masked_mean(ratio < 1.25 ** k, mask)
    return _result(out, was_2d)


# ----------------------------------------------------------------------------- SSIM
def ssim_window(kind: str = 'gaussian', size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """1-D separable SSIM window (size,), summing to 1: 'gaussian' (std ``sigma`` px) or 'box'."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f'window size must be odd and positive, not {size}')
    if kind == 'gaussian':
        x = np.arange(size, dtype=np.float64) - size // 2
        w = np.exp(-0.5 * (x / sigma) ** 2)
    elif kind == 'box':
        w = np.ones(size)
    else:
        raise ValueError(f"window must be 'gaussian' or 'box', not {kind!r}")
    return w / w.sum()


def ssim_from_moments(mu_x, mu_y, var_x, var_y, cov_xy, c1: float, c2: float):
    """SSIM map from local means/variances/covariance (numpy arrays or torch tensors alike)."""
    return ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def _filter_same(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable zero-padded 'same' correlation of (N, H, W) ``x`` with 1-D window ``w``."""
    r, (h, wd) = len(w) // 2, x.shape[1:]
    xp = np.pad(x, ((0, 0), (r, r), (0, 0)))
    x = sum(wk * xp[:, k:k + h] for k, wk in enumerate(w))
    xp = np.pad(x, ((0, 0), (0, 0), (r, r)))
    return sum(wk * xp[:, :, k:k + wd] for k, wk in enumerate(w))


def ssim(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, *,
         data_range: float | None = None, window: str = 'gaussian', size: int = 11,
         sigma: float = 1.5, min_coverage: float = 0.5) -> float | np.ndarray:
    """Masked SSIM per image (Wang et al. 2004, K1 = 0.01, K2 = 0.03), 1 for identical images.

    Local statistics use only valid pixels of each window (window weights renormalised), so
    invalid GT never leaks in; zero padding makes borders behave the same way. The SSIM map
    is averaged over valid pixels whose window has at least ``min_coverage`` of its weight
    valid. ``data_range`` (depth units) defaults to max - min of the image's valid GT.
    """
    was_2d, (p, g, v) = _batched(pred, gt, valid)
    mask = valid_gt(g, v) & np.isfinite(p)
    m = mask.astype(np.float64)
    x, y = np.where(mask, p, 0.0).astype(np.float64), np.where(mask, g, 0.0).astype(np.float64)
    if data_range is None:
        hi = np.where(mask, g, -np.inf).max(axis=(1, 2))
        lo = np.where(mask, g, np.inf).min(axis=(1, 2))
        with np.errstate(invalid='ignore'):
            data_range = np.where(hi > lo, hi - lo, 1.0)[:, None, None]
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    w1 = ssim_window(window, size, sigma)
    cover = _filter_same(m, w1)
    safe = np.maximum(cover, 1e-12)
    mu_x, mu_y = _filter_same(x * m, w1) / safe, _filter_same(y * m, w1) / safe
    var_x = _filter_same(x * x * m, w1) / safe - mu_x ** 2
    var_y = _filter_same(y * y * m, w1) / safe - mu_y ** 2
    cov = _filter_same(x * y * m, w1) / safe - mu_x * mu_y
    smap = ssim_from_moments(mu_x, mu_y, var_x, var_y, cov, c1, c2)
    return _result({'ssim': _masked_mean(smap, mask & (cover >= min_coverage))}, was_2d)['ssim']


# ----------------------------------------------------------------------------- relative depth
def normalize_pairs(pairs_px: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixel-coordinate pairs (..., 5) ``(y_i, x_i, y_j, x_j, r)`` of an image of ``size``
    (H, W) -> normalised coordinates ``(pixel + 0.5) / size`` used by ``whdr`` and the ranking loss."""
    h, w = size
    out = np.asarray(pairs_px, dtype=np.float64).copy()
    out[..., [0, 2]] = (out[..., [0, 2]] + 0.5) / h
    out[..., [1, 3]] = (out[..., [1, 3]] + 0.5) / w
    return out


def sample_pairs(values: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values at both points of normalised ``pairs``: ``values`` (N, H, W), ``pairs`` (N, K, 5)
    -> (z_i, z_j), each (N, K). Coordinates map to pixel ``floor(u * size)``, clipped."""
    n, h, w = values.shape
    coords = np.nan_to_num(pairs[..., :4])
    rows = [np.clip(np.floor(coords[..., c] * s), 0, s - 1).astype(np.int64) for c, s in zip(range(4), (h, w, h, w))]
    flat = values.reshape(n, -1)
    return (np.take_along_axis(flat, rows[0] * w + rows[1], axis=1),
            np.take_along_axis(flat, rows[2] * w + rows[3], axis=1))


def whdr(pred: np.ndarray, pairs: np.ndarray, valid: np.ndarray | None = None, *,
         threshold: float = 0.0, higher_is_closer: bool = False) -> float | np.ndarray:
    """Weighted human disagreement rate (all weights 1): fraction of pairs ordered wrongly.

    The predicted relation of a pair is +1 (i closer) if the prediction says i is closer by
    more than the ratio ``1 + threshold`` (depth-like ``pred``: ``z_j > (1 + t) * z_i``;
    with ``higher_is_closer`` e.g. for disparity or scores: ``z_i > (1 + t) * z_j``), -1 in
    the mirrored case, else 0; a pair is wrong when that differs from its ``r``. With the
    default ``threshold = 0`` (DIW protocol) only exact ties predict "equal", so use a
    positive threshold when ``r = 0`` pairs are present; it then needs ``pred > 0``.
    Pairs count where ``valid`` (K,)/(N, K) is set, r is in {-1, 0, 1} and coordinates are finite.
    """
    pred_a, pairs_a = np.asarray(pred, dtype=np.float64), np.asarray(pairs, dtype=np.float64)
    was_2d = pred_a.ndim == 2
    pred_a, pairs_a = pred_a.reshape((-1, *pred_a.shape[-2:])), pairs_a.reshape((-1, *pairs_a.shape[-2:]))
    r = pairs_a[..., 4]
    ok = np.isfinite(pairs_a).all(-1) & np.isin(r, (-1, 0, 1))
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool).reshape(ok.shape)
    zi, zj = sample_pairs(pred_a, pairs_a)
    if threshold > 0 and np.any(ok & ((zi <= 0) | (zj <= 0))):
        raise ValueError('whdr with a ratio threshold needs positive predictions at the pair points')
    near, far = (zi, zj) if higher_is_closer else (zj, zi)
    rel = (near > (1 + threshold) * far).astype(np.int64) - (far > (1 + threshold) * near)
    wrong = (rel != r) & ok
    with np.errstate(invalid='ignore', divide='ignore'):
        rate = np.where(ok.sum(-1) > 0, wrong.sum(-1) / np.maximum(ok.sum(-1), 1), np.nan)
    return float(rate[0]) if was_2d else rate


# ----------------------------------------------------------------------------- stereo
def stereo_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, *,
                   pred_valid: np.ndarray | None = None, thresholds: tuple[float, ...] = (1.0, 2.0, 3.0),
                   max_disparity: float | None = None) -> Metrics:
    """Disparity metrics per image (disparities in pixels at the GT resolution).

    GT counts where finite, > 0, <= ``max_disparity`` and ``valid``. A pixel has a prediction
    where ``pred`` is finite and > 0, AND ``pred_valid`` if given. Returns:

    * ``density``: fraction of counted GT pixels that have a prediction;
    * ``epe``: mean |pred - gt| over GT pixels with a prediction;
    * ``bad{N}`` / ``d1``: fraction of all counted GT pixels that are bad, a pixel without a
      prediction counting as bad (fair when methods of different density are compared);
      bad-N: error > N px; D1 (KITTI): error > 3 px AND > 5 % of gt;
    * ``bad{N}_pred`` / ``d1_pred``: the same over GT pixels with a prediction only.
    """
    was_2d, (p, g, v, pv) = _batched(pred, gt, valid, pred_valid)
    p = np.asarray(p, dtype=np.float64)
    gt_ok = valid_gt(g, v, max_disparity)
    with np.errstate(invalid='ignore'):
        has = np.isfinite(p) & (p > 0)
    if pv is not None:
        has &= np.asarray(pv, dtype=bool)
    both = gt_ok & has
    err = np.abs(np.where(both, p, 0.0) - np.where(both, g, 0.0))
    out = {'density': _masked_mean(has, gt_ok), 'epe': _masked_mean(err, both)}
    bad = {f'bad{t:g}': err > t for t in thresholds}
    bad['d1'] = (err > 3.0) & (err > 0.05 * np.where(both, g, 0.0))
    for name, b in bad.items():
        out[name] = _masked_mean(b | ~has, gt_ok)
        out[f'{name}_pred'] = _masked_mean(b, both)
    return _result(out, was_2d)


# ----------------------------------------------------------------------------- accumulation
class MetricAccumulator:
    """Averages per-image metrics over a dataset (mean over images, NaN entries skipped).

    >>> acc = MetricAccumulator()
    >>> acc.update(depth_metrics(pred, gt))      # floats for one image, or (N,) arrays
    >>> acc.mean()['rmse']
    """

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def update(self, metrics: Mapping[str, float | np.ndarray]) -> None:
        """Add one image (float values) or a batch ((N,) arrays) of per-image metrics."""
        for key, value in metrics.items():
            vals = np.asarray(value, dtype=np.float64).ravel()
            vals = vals[np.isfinite(vals)]
            self._sums[key] = self._sums.get(key, 0.0) + float(vals.sum())
            self._counts[key] = self._counts.get(key, 0) + int(vals.size)

    @property
    def counts(self) -> dict[str, int]:
        """Number of images that contributed to each metric."""
        return dict(self._counts)

    def mean(self) -> dict[str, float]:
        """Per-metric mean over images (NaN for a metric no image defined)."""
        return {k: self._sums[k] / n if n else float('nan') for k, n in self._counts.items()}
