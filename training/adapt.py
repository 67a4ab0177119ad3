"""Fit shipped networks to a robot's own stereo recording without labels (``depth-ros-adapt``).

Stereo: the network is fine-tuned on random crops of the recording's pairs with the
self-supervised losses of :mod:`.losses.photometric` on every stage (photometric reconstruction
of the left view, edge-aware smoothness, left-right consistency, SGBM's confident pixels as
sparse labels), plus an L2 pull towards the shipped weights (L2-SP) so it keeps what it knew.
BatchNorm statistics stay frozen (batches of two crops would make them noise).

Mono: the student is distilled from the adapted stereo network on the same frames. The
teacher's disparity and the rig's baseline give metric depth (depth = fx * baseline / d), which
becomes the student's target in its canonical camera (out = depth * f_canonical / f_net), so it
learns this camera's metric scale. Loss: mean |log student - log target| where the teacher
sees more than 1 px of disparity.

State is checkpointed every ``save_every`` steps (``adapt_state.pt``); crops are drawn from a
generator seeded by (seed, step), so a resumed run continues as if never stopped.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from depth_ros.model_card import ModelCard
from depth_ros.nets.checkpoint import save_state
from depth_ros.recordings.frames import StereoRecording

from .losses import photometric as ph

STATE = 'adapt_state.pt'


@dataclass
class AdaptConfig:
    """Steps, crops and loss weights (photometric 1; smoothness on the mean-normalized disparity,
    left-right consistency and SGBM labels in px; anchor: L2-SP per squared weight change)."""
    share: float = 0.7                 # the first share of the frames is adapted on
    steps: int = 150                   # stereo optimiser steps
    mono_steps: int = 150              # mono distillation steps (0: no mono)
    crop: tuple[int, int] = (256, 384)  # stereo crop H, W (px; multiples of the network's multiple_of)
    batch: int = 2                     # stereo crops per step
    mono_batch: int = 8                # mono frames per step
    lr: float = 5e-5                   # Adam, stereo
    mono_lr: float = 1e-4              # Adam, mono
    w_smooth: float = 0.01
    w_lr: float = 0.02
    w_sgbm: float = 0.02
    w_anchor: float = 1e-3
    probe: int = 8                     # fixed crops the losses are reported on, before and after
    save_every: int = 25
    seed: int = 0


def freeze_norms(model: nn.Module) -> nn.Module:
    """Training mode (networks return every stage / head) with BatchNorm statistics frozen."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


class StereoAdapter:
    """Self-supervised fine-tuning of a stereo network (``model``: from the card's torch weights)
    on frames ``indices`` of ``rec``. ``labels``: SGBM disparity per frame (NaN: none) or None."""

    def __init__(self, model: nn.Module, card: ModelCard, rec: StereoRecording, indices: list[int],
                 cfg: AdaptConfig, labels: dict[int, np.ndarray] | None = None) -> None:
        self.model, self.rec, self.indices, self.cfg, self.labels = model, rec, indices, cfg, labels
        self.anchor = [p.detach().clone() for p in model.parameters()]
        weights = (card.training.get('loss') or {}).get('stages', {}).get('weights')
        stages = getattr(model, 'stages', 1)
        self.stage_weights = list(weights)[:stages] if weights and len(weights) >= stages else [1.0] * stages
        height, width = rec.left[0].shape[:2]
        m = model.multiple_of
        self.crop = (min(cfg.crop[0], height // m * m), min(cfg.crop[1], width // m * m))
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.probe_crops = self.crops(np.random.default_rng([cfg.seed, 1 << 30]), cfg.probe)

    def crops(self, rng: np.random.Generator, n: int, indices: list[int] | None = None) -> list[tuple[int, int, int]]:
        """(frame, top, left) of ``n`` random crops of frames ``indices`` (default: the adapted ones)."""
        height, width = self.rec.left[0].shape[:2]
        ch, cw = self.crop
        return [(int(rng.choice(indices or self.indices)), int(rng.integers(0, height - ch + 1)),
                 int(rng.integers(0, width - cw + 1))) for _ in range(n)]

    def batch(self, crops: list[tuple[int, int, int]]) -> dict[str, torch.Tensor]:
        ch, cw = self.crop
        cut = [(slice(t, t + ch), slice(x, x + cw)) for _, t, x in crops]
        out = {'left': _to_tensor([self.rec.left[i][c] for (i, _, _), c in zip(crops, cut)]),
               'right': _to_tensor([self.rec.right[i][c] for (i, _, _), c in zip(crops, cut)])}
        if self.labels is not None and all(i in self.labels for i, _, _ in crops):
            out['labels'] = torch.from_numpy(np.stack([self.labels[i][c] for (i, _, _), c in zip(crops, cut)]))[:, None]
        return out

    def losses(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every self-supervised term (weighted sum in 'loss'); stage terms summed with the
        card's stage weights, left-right consistency and labels on the last stage."""
        preds = self.model(b['left'], b['right'])
        preds = preds if isinstance(preds, list) else [preds]
        terms = {'photometric': sum(w * ph.photometric(d, b['left'], b['right'])
                                    for w, d in zip(self.stage_weights, preds)) / sum(self.stage_weights),
                 'smoothness': sum(w * ph.smoothness(d, b['left'])
                                   for w, d in zip(self.stage_weights, preds)) / sum(self.stage_weights)}
        cfg = self.cfg
        if cfg.w_lr:
            right_preds = self.model(b['right'].flip(-1), b['left'].flip(-1))
            right_d = (right_preds[-1] if isinstance(right_preds, list) else right_preds).flip(-1)
            terms['lr_consistency'] = ph.lr_consistency(preds[-1], right_d)
        if cfg.w_sgbm and 'labels' in b:
            terms['sgbm'] = ph.sparse(preds[-1], b['labels'])
        terms['anchor'] = sum(((p - a) ** 2).sum() for p, a in zip(self.model.parameters(), self.anchor))
        weights = {'photometric': 1.0, 'smoothness': cfg.w_smooth, 'lr_consistency': cfg.w_lr, 'sgbm': cfg.w_sgbm,
                   'anchor': cfg.w_anchor}
        terms['loss'] = sum(weights[k] * v for k, v in terms.items())
        return terms

    def step(self, step: int) -> dict[str, float]:
        freeze_norms(self.model)
        crops = self.crops(np.random.default_rng([self.cfg.seed, step]), self.cfg.batch)
        terms = self.losses(self.batch(crops))
        self.optimizer.zero_grad(set_to_none=True)
        terms['loss'].backward()
        self.optimizer.step()
        values = {k: float(v.detach()) for k, v in terms.items()}
        if not math.isfinite(values['loss']):
            raise FloatingPointError(f'stereo adaptation: non-finite loss at step {step}: {values}')
        return values

    @torch.no_grad()
    def probe(self, crops: list[tuple[int, int, int]] | None = None) -> dict[str, float]:
        """Mean terms over ``crops`` (default: the fixed probe crops of the adapted frames)."""
        freeze_norms(self.model)
        crops = crops or self.probe_crops
        sums: dict[str, float] = {}
        for crop in crops:
            for k, v in self.losses(self.batch([crop])).items():
                sums[k] = sums.get(k, 0.0) + float(v) / len(crops)
        return sums


def sgbm_labels(rec: StereoRecording, indices: list[int]) -> dict[int, np.ndarray]:
    """OpenCV SGBM's disparity (px, NaN where it finds no confident match) of frames ``indices``."""
    from depth_ros.inference import StereoEstimator

    sgbm = StereoEstimator('opencv_sgbm')
    return {i: np.asarray(sgbm(rec.left[i], rec.right[i]), np.float32) for i in indices}


@torch.no_grad()
def stereo_disparity(model: nn.Module, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(H, W) float32 disparity (px) of one pair by the torch network (eval; padded to its multiple_of)."""
    model.eval()
    h, w = left.shape[:2]
    m = model.multiple_of
    ph_, pw = -h % m, -w % m
    tl, tr = (F.pad(_to_tensor([x]), (0, pw, 0, ph_), mode='replicate') for x in (left, right))
    return model(tl, tr)[0, 0, :h, :w].numpy()


def _area(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """NaN-aware area resize of (H, W) to (h, w)."""
    ok = np.isfinite(values)
    num = cv2.resize(np.where(ok, values, 0).astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA)
    den = cv2.resize(ok.astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA)
    return np.where(den > 0.5, num / np.maximum(den, 1e-6), np.nan).astype(np.float32)


class MonoDistiller:
    """Distill the mono ``student`` (its card: f_canonical, size) from teacher disparities of
    frames ``indices`` (dict index -> (H, W) px); the student runs at ``net_size`` (H, W)."""

    def __init__(self, student: nn.Module, card: ModelCard, rec: StereoRecording, teacher: dict[int, np.ndarray],
                 net_size: tuple[int, int], cfg: AdaptConfig) -> None:
        self.student, self.rec, self.cfg = student, rec, cfg
        self.indices = sorted(teacher)
        self.net_size = net_size
        f_net = rec.fx * net_size[1] / rec.left[0].shape[1]
        to_canonical = float(card.f_canonical) / f_net if card.f_canonical else 1.0
        self.images, self.targets = {}, {}
        for i in self.indices:
            self.images[i] = cv2.resize(rec.left[i], net_size[::-1], interpolation=cv2.INTER_AREA)
            d = _area(np.where(teacher[i] > 1.0, teacher[i], np.nan), net_size)
            self.targets[i] = (rec.fx * rec.baseline / d * to_canonical).astype(np.float32)
        self.optimizer = torch.optim.Adam(student.parameters(), lr=cfg.mono_lr)

    def loss(self, ids: list[int], flip: list[bool]) -> torch.Tensor:
        x = _to_tensor([self.images[i][:, ::-1] if f else self.images[i] for i, f in zip(ids, flip)])
        t = torch.from_numpy(np.stack([self.targets[i][:, ::-1] if f else self.targets[i]
                                       for i, f in zip(ids, flip)]))[:, None]
        pred = self.student(x)
        pred = pred[0] if isinstance(pred, list) else pred
        pred = F.interpolate(pred, size=t.shape[-2:], mode='bilinear', align_corners=False)
        ok = torch.isfinite(t) & (t > 0)
        diff = (torch.log(pred.clamp_min(1e-3)) - torch.log(torch.where(ok, t, torch.ones_like(t)))).abs()
        return diff[ok].mean() if ok.any() else pred.sum() * 0

    def step(self, step: int) -> dict[str, float]:
        freeze_norms(self.student)
        rng = np.random.default_rng([self.cfg.seed, 2, step])
        ids = [int(i) for i in rng.choice(self.indices, self.cfg.mono_batch)]
        loss = self.loss(ids, list(rng.random(len(ids)) < 0.5))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f'mono distillation: non-finite loss at step {step}')
        return {'distill': float(loss.detach())}

    @torch.no_grad()
    def probe(self) -> dict[str, float]:
        """Mean distillation loss over every frame (unflipped)."""
        self.student.eval()
        losses = [float(self.loss([i], [False])) for i in self.indices]
        return {'distill': float(np.mean(losses))}


def run_steps(name: str, worker: StereoAdapter | MonoDistiller, total: int, state: dict[str, Any],
              save: Callable[[], None], progress: Any) -> None:
    """Steps ``state[name + '_step']`` .. total of ``worker``, saving every cfg.save_every steps."""
    key = f'{name}_step'
    while state[key] < total:
        values = worker.step(state[key])
        state[key] += 1
        state.setdefault(f'{name}_history', []).append(values)
        progress.update(state[key])
        if state[key] % worker.cfg.save_every == 0 or state[key] == total:
            save()


def save_run(path: Path, state: dict[str, Any], models: dict[str, nn.Module],
             optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Atomic checkpoint of the run: state + model/optimizer state dicts."""
    full = copy.copy(state)
    full.update({f'{k}_model': m.state_dict() for k, m in models.items()})
    full.update({f'{k}_optimizer': o.state_dict() for k, o in optimizers.items()})
    save_state(full, path)


def config_dict(cfg: AdaptConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d['crop'] = list(cfg.crop)
    return d


def ground_truth_scores(stereo: str | Path, mono: str | Path | None, rec: StereoRecording,
                        indices: list[int]) -> dict[str, float]:
    """Mean bad-3 and EPE (stereo, every pixel with ground truth) and metric AbsRel and delta1
    (mono: the camera's fx, no scale alignment) over frames ``indices``, through the runtime
    (ONNX Runtime estimators, as the nodes run the models)."""
    from depth_ros.inference import DepthEstimator, StereoEstimator
    from depth_ros.metrics import depth_metrics, stereo_metrics

    net = StereoEstimator(stereo)
    scores = {'bad3': [], 'epe': []}
    for i in indices:
        m = stereo_metrics(net(rec.left[i], rec.right[i]), rec.disparity[i])
        scores['bad3'].append(m['bad3'])
        scores['epe'].append(m['epe'])
    if mono:
        est = DepthEstimator(mono)
        scores.update(absrel=[], delta1=[])
        for i in indices:
            m = depth_metrics(est(rec.left[i], fx=rec.fx), rec.depth[i])
            scores['absrel'].append(m['absrel'])
            scores['delta1'].append(m['delta1'])
    return {k: float(np.mean(v)) for k, v in scores.items()}
