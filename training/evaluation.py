"""Evaluation through the RUNTIME path (depth_ros.inference), shared by depth-ros-evaluate and
depth-ros-compare, so the numbers are what the ROS nodes give.

Samples are numpy dicts, as a camera delivers them:

- stereo: 'left', 'right' (H, W, 3) uint8 RGB; 'disparity' (H, W) float32 px (NaN: no GT);
- mono: 'image' (H, W, 3) uint8; 'depth' (H, W) float32 metric m (NaN: none) and/or 'pairs'
  (K, 5) normalised relative-depth rows; 'fx' focal (px) if known.

Models: a model card / name / .onnx (ONNX Runtime), a ``.pt`` checkpoint (torch backend), or
'opencv_sgbm' / 'opencv_bm'. Mono depth is converted to the sample camera's metric depth when
the card has ``f_canonical`` and the sample has ``fx``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depth_ros.inference import DepthEstimator, StereoEstimator
from depth_ros.inference.opencv_stereo import METHODS
from depth_ros.model_card import find_card, load_card

from depth_ros.metrics import MetricAccumulator, depth_metrics, stereo_metrics, whdr
from .config import train_size
from .plots import to_rgb8
from .stream_setup import parse_source, stream_seed

CHECKPOINT_SUFFIXES = ('.pt', '.pth', '.ckpt')
VAL_BATCH = 4  # the recipes' data.val_batch_size
Sample = dict[str, Any]
Estimator = StereoEstimator | DepthEstimator


def is_checkpoint(model: str) -> bool:
    return Path(model).suffix in CHECKPOINT_SUFFIXES


def checkpoint_info(model: str) -> dict[str, Any]:
    """arch, kind, the training config (if any) and card info of a checkpoint (torch.load, CPU)."""
    from depth_ros.nets import model_kind
    from depth_ros.nets.checkpoint import read_checkpoint

    ckpt = read_checkpoint(model)
    return {'arch': ckpt['arch'], 'kind': model_kind(ckpt['arch']), 'config': ckpt.get('config') or {},
            'options': ckpt.get('options', {})}


def describe(model: str) -> dict[str, Any]:
    """{'name', 'kind', 'size' (H, W) the model was trained/exported at or None, 'max_disparity'}."""
    if model in METHODS:
        return {'name': model, 'kind': 'stereo', 'size': None, 'max_disparity': None}
    if is_checkpoint(model):
        info = checkpoint_info(model)
        data = info['config'].get('data', {})
        return {'name': Path(model).stem, 'kind': info['kind'], 'size': train_size(data),
                'max_disparity': info['options'].get('max_disparity', data.get('max_disparity'))}
    card = load_card(find_card(model))
    return {'name': card.name, 'kind': card.kind, 'size': card.input.get('size'),
            'max_disparity': card.options.get('max_disparity')}


def load_estimator(model: str, kind: str, max_disparity: float | None = None,
                   input_scale: float = 1.0, fusion: str = 'none', spn_limit: float | None = None) -> Estimator:
    """The runtime estimator of ``model``; OpenCV matchers search ``max_disparity`` px (rounded
    up to 16); a mono checkpoint runs at the size it was trained at (recorded in its card);
    stereo networks see the pair resized by ``input_scale`` and are fused with SGBM (same range)
    by ``fusion`` 'sgbm', their SPN limited by ``spn_limit`` (None: the card's; the node parameters
    of those names)."""
    if kind == 'mono':
        return DepthEstimator(model)
    sgbm = None
    if (model in METHODS or fusion != 'none') and max_disparity:
        sgbm = {'disparity_range': int(-(-max_disparity // 16) * 16)}
    if model in METHODS:
        return StereoEstimator(model, sgbm=sgbm)
    return StereoEstimator(model, sgbm=sgbm, input_scale=input_scale, fusion=fusion, spn_limit=spn_limit)


# ---------------------------------------------------------------------------------------- data
def synthetic_samples(kind: str, n: int, size: tuple[int, int], split: str = 'val', *,
                      max_disparity: float = 192.0, pairs: int = 64) -> list[Sample]:
    """``n`` samples of the synthetic engine at ``size`` (H, W): the held-out validation split
    ('val': rendered in batches of VAL_BATCH, so at the trainer's size and default
    val_batch_size these are its validation samples) or the engine's seed-0 training stream
    ('train'); images are quantised to uint8 like a camera's, mono ground truth is metric
    depth with pairs drawn from it."""
    from .data.synth import SyntheticMono, SyntheticStereo

    if kind == 'stereo':
        engine = SyntheticStereo(size[0], size[1], 'cpu', 0, max_disparity, photometric=None)
    else:
        engine = SyntheticMono(size[0], size[1], 'cpu', 0, photometric=None)
    if split == 'val':
        batches = engine.validation_batches(-(-n // VAL_BATCH), VAL_BATCH)
        batch = {k: torch.cat([b[k] for b in batches]) for k in batches[0] if isinstance(batches[0][k], torch.Tensor)}
    else:
        batch = engine.next_batch(n)
    samples = []
    for i in range(n):
        if kind == 'stereo':
            samples.append({'left': to_rgb8(batch['left'][i].numpy()), 'right': to_rgb8(batch['right'][i].numpy()),
                            'disparity': batch['disparity'][i, 0].numpy()})
        else:
            depth = batch['depth_metric'][i, 0].numpy()
            samples.append({'image': to_rgb8(batch['image'][i].numpy()), 'depth': depth,
                            'fx': float(batch['fx'][i]), 'pairs': depth_pairs(depth, pairs, seed=i)})
    return samples


def depth_pairs(depth: np.ndarray, k: int, seed: int, equal: float = 0.02) -> np.ndarray:
    """(K, 5) normalised relative-depth pairs drawn from a dense (H, W) depth map (see
    :func:`~.tasks.sample_depth_pairs`, the trainer's sampler)."""
    from .tasks import sample_depth_pairs

    gen = torch.Generator().manual_seed(stream_seed(seed, k))
    d = torch.from_numpy(np.asarray(depth, np.float32))[None, None]
    return sample_depth_pairs(d, None, k, equal, gen)[0].numpy().astype(np.float64)


def load_samples(data: str, kind: str, n: int, size: tuple[int, int], split: str = 'val',
                 max_disparity: float = 192.0) -> list[Sample]:
    """Samples of 'synthetic' or '<reader>:<path>' (first ``n`` of the split, in file order)."""
    name, path = parse_source(data)
    if name == 'synthetic':
        return synthetic_samples(kind, n, size, split, max_disparity=max_disparity)
    from .reader_stream import reader_samples
    return reader_samples(name, path, kind, n, split)


# ---------------------------------------------------------------------------------------- scoring
def predict(estimator: Estimator, sample: Sample) -> np.ndarray:
    """(H, W) float32 disparity px / depth m (NaN invalid) at the sample's size."""
    if isinstance(estimator, StereoEstimator):
        return estimator(sample['left'], sample['right'])
    return estimator(sample['image'], fx=sample.get('fx'))


def score(kind: str, pred: np.ndarray, sample: Sample, max_depth: float | None = None) -> dict[str, float]:
    """Metrics of one prediction: stereo EPE, bad-1/2/3, D1, density (missing = bad); mono
    AbsRel, RMSE, delta1..3 ... where depth is given, WHDR where pairs are."""
    if kind == 'stereo':
        return stereo_metrics(pred, sample['disparity'])
    out: dict[str, float] = {}
    if sample.get('depth') is not None:
        out.update(depth_metrics(pred, sample['depth'], max_depth=max_depth))
        aligned = depth_metrics(pred, sample['depth'], max_depth=max_depth, align_mode='median')
        out.update({f'{k}_median_aligned': aligned[k] for k in ('absrel', 'rmse', 'delta1')})
    if sample.get('pairs') is not None and len(sample['pairs']):
        out['whdr'] = whdr(np.nan_to_num(pred, nan=0.0), sample['pairs'])
    return out


def stereo_metrics_where(preds: list[np.ndarray], references: list[np.ndarray],
                         samples: list[Sample]) -> dict[str, float]:
    """Mean stereo metrics of ``preds`` on the pixels where the ``references`` (e.g. SGBM's
    disparities) have a value: the comparison on the pixels both methods answer."""
    acc = MetricAccumulator()
    for pred, ref, sample in zip(preds, references, samples):
        acc.update(stereo_metrics(pred, sample['disparity'], valid=np.isfinite(ref)))
    return acc.mean()


def evaluate(estimator: Estimator, samples: list[Sample], kind: str, stages: int | None = None,
             max_depth: float | None = None) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean metrics over ``samples`` (plus 'ms': mean time per estimate, milliseconds) and the
    predictions; ``stages`` selects an anytime network's stage count."""
    if stages is not None:
        estimator.stages = stages
    acc, preds, elapsed = MetricAccumulator(), [], 0.0
    for sample in samples:
        t0 = time.perf_counter()
        pred = predict(estimator, sample)
        elapsed += time.perf_counter() - t0
        preds.append(pred)
        acc.update(score(kind, pred, sample, max_depth))
    return {**acc.mean(), 'ms': 1000.0 * elapsed / max(len(samples), 1)}, preds


def evaluate_model(model: str, samples: list[Sample], kind: str, max_disparity: float | None = None,
                   max_depth: float | None = None, input_scale: float = 1.0, fusion: str = 'none',
                   spn_limit: float | None = None) -> dict[str, Any]:
    """{'name', 'metrics' (all stages), 'stages' {k: metrics} (anytime stereo networks),
    'predictions'} of one model on ``samples`` (stereo networks at ``input_scale``, fused by ``fusion``,
    SPN limited by ``spn_limit``)."""
    estimator = load_estimator(model, kind, max_disparity, input_scale, fusion, spn_limit)
    result: dict[str, Any] = {'name': estimator.name}
    stage_counts = getattr(estimator, 'available_stages', [None])
    if len(stage_counts) > 1:
        result['stages'] = {str(k): evaluate(estimator, samples, kind, k, max_depth)[0] for k in stage_counts[:-1]}
    result['metrics'], result['predictions'] = evaluate(estimator, samples, kind, stage_counts[-1], max_depth)
    if len(stage_counts) > 1:
        result['stages'][str(stage_counts[-1])] = result['metrics']
    return result
