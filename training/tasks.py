"""What a training step computes for each kind of network: losses, validation metrics, samples.

Batches are dicts of tensors on the training device:

- stereo: 'left', 'right' (B, 3, H, W) RGB in [0, 1]; 'disparity' (B, 1, H, W) px of the left
  image (NaN or <= 0: no ground truth); optional 'valid' (B, 1, H, W) bool;
- mono: 'image' (B, 3, H, W); 'depth' (B, 1, H, W) m in the canonical camera (NaN / <= 0:
  none) and/or 'pairs' (B, K, 5) relative-depth rows (y_i, x_i, y_j, x_j, r) in normalised
  coordinates (r = +1: i closer); optional 'valid'.

Loss terms are configured in ``loss.terms`` (see :class:`~.config.LossConfig`); their values
are returned already multiplied by their static ``weight``, as float32 scalars.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TrainConfig
from .losses import Loss, build_loss
from depth_ros.metrics import MetricAccumulator, depth_metrics, stereo_metrics, whdr

TARGETS = {'kd_pixel': 'teacher', 'kd_stages': 'teacher', 'kd_pairwise': 'feature', 'ranking': 'pairs'}
# (others: ground truth)


class WithFeatures(nn.Module):
    """forward(x) = model.forward_with_features(x): (prediction(s), penultimate feature), so DDP
    sees the feature computation as part of its forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        return self.model.forward_with_features(x)


def sample_depth_pairs(depth: torch.Tensor, valid: torch.Tensor | None, k: int, equal: float,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """K random point pairs per image from dense depth (B, 1, H, W) -> (B, K, 5) rows
    (y_i, x_i, y_j, x_j, r), coordinates normalised as (pixel + 0.5) / size, r = +1 if i is
    closer than j by more than the ratio 1 + ``equal``, -1 if farther, else 0; images without
    valid depth give NaN rows. Points are drawn uniformly among valid pixels."""
    b, _, h, w = depth.shape
    ok = torch.isfinite(depth) & (depth > 0)
    if valid is not None:
        ok = ok & valid.to(torch.bool)
    weights = ok.reshape(b, h * w).to(torch.float32)
    empty = weights.sum(1) == 0
    weights[empty] = 1.0
    idx = torch.multinomial(weights, 2 * k, replacement=True, generator=generator)
    z = torch.nan_to_num(depth.reshape(b, h * w), nan=0.0).gather(1, idx)
    zi, zj = z[:, :k], z[:, k:]
    r = (zj > zi * (1 + equal)).to(depth.dtype) - (zi > zj * (1 + equal)).to(depth.dtype)
    ys, xs = ((idx // w).to(depth.dtype) + 0.5) / h, ((idx % w).to(depth.dtype) + 0.5) / w
    pairs = torch.stack([ys[:, :k], xs[:, :k], ys[:, k:], xs[:, k:], r], -1)
    pairs[empty] = float('nan')
    return pairs


def _float(x: Any) -> Any:
    """Network output(s) as float32 (losses are computed in float32 under autocast)."""
    return [t.float() for t in x] if isinstance(x, (list, tuple)) else x.float()


class Task:
    """Common part: the configured loss terms and what each one is fed."""

    kind = ''

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        self.terms: dict[str, tuple[Loss, float, str]] = {}
        for name, spec in cfg.loss.terms.items():
            spec = dict(spec)
            weight = float(spec.pop('weight', 1.0))
            self.terms[name] = (build_loss(self._defaults(spec)), weight, TARGETS.get(spec['name'], 'gt'))

    def _defaults(self, spec: dict[str, Any]) -> dict[str, Any]:
        return spec

    @property
    def best_metric(self) -> str:
        raise NotImplementedError

    def train_module(self, model: nn.Module) -> nn.Module:
        """The module the trainer wraps (DDP / compile) and calls in ``losses``."""
        return model

    def unused_parameters(self, model: nn.Module) -> bool:
        """True when some parameters get no gradient (DDP must then look for them)."""
        return False

    def losses(self, module: nn.Module, batch: dict[str, torch.Tensor], autocast: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        raise NotImplementedError

    def labelled_predictions(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        """Eval-mode predictions (B, 1, H, W) at the input size, each with its label in plots."""
        raise NotImplementedError

    @torch.no_grad()
    def sample_rows(self, model: nn.Module, batch: dict[str, torch.Tensor], n: int) -> tuple[list, str]:
        """Rows (input image, [(label, map)], ground truth or None) for plots.sample_figure, and the unit."""
        image, target = ('left', 'disparity') if self.kind == 'stereo' else ('image', 'depth')
        preds = self.labelled_predictions(model, batch)
        gt = batch.get(target)
        rows = [(batch[image][i].cpu().numpy(), [(label, p[i, 0].cpu().numpy()) for label, p in preds],
                 None if gt is None else gt[i, 0].cpu().numpy()) for i in range(min(n, batch[image].shape[0]))]
        return rows, 'px' if self.kind == 'stereo' else 'm'


class StereoTask(Task):
    """AnyNet-style stereo: the 'anynet' loss gets every stage output, 'kd_stages' every stage
    output and the teacher's (``loss.teacher``, frozen), other losses the last."""

    kind = 'stereo'

    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        self.teacher: nn.Module | None = None
        if any(t == 'teacher' for _, _, t in self.terms.values()):
            if not cfg.loss.teacher:
                raise ValueError('kd_stages loss terms need loss.teacher (a checkpoint or a shipped model)')
            self.teacher = load_teacher(cfg.loss.teacher, 0.0, device)[0]
            if not hasattr(self.teacher, 'all_stages'):
                raise ValueError(f'loss.teacher {cfg.loss.teacher} is not an anytime stereo network')

    def _defaults(self, spec: dict[str, Any]) -> dict[str, Any]:
        if spec['name'] == 'anynet':
            spec.setdefault('max_disparity', self.cfg.data.max_disparity)
        return spec

    @property
    def best_metric(self) -> str:
        return 'epe'

    def unused_parameters(self, model: nn.Module) -> bool:
        return getattr(model, 'stages', 1) < getattr(model, 'max_stages', 1)

    def losses(self, module: nn.Module, batch: dict[str, torch.Tensor], autocast: Any) -> dict[str, torch.Tensor]:
        with autocast:
            out = module(batch['left'], batch['right'])
            if self.teacher is not None:
                with torch.no_grad():
                    teacher = _float(self.teacher.all_stages(batch['left'], batch['right']))
        stages = _float(out if isinstance(out, (list, tuple)) else [out])
        target, valid = batch['disparity'], batch.get('valid')
        return {name: weight * (loss(stages, teacher) if source == 'teacher' else
                                loss(stages if loss.name == 'anynet' else stages[-1], target, valid))
                for name, (loss, weight, source) in self.terms.items()}

    def _stage_predictions(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Eval-mode disparity (B, 1, H, W) of every stage count 1 .. max_stages."""
        before = model.stages
        try:
            preds = []
            for k in range(1, getattr(model, 'max_stages', 1) + 1):
                model.stages = k
                preds.append(model(batch['left'], batch['right']).float())
            return preds
        finally:
            model.stages = before

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """EPE, bad-1/2/3, D1 and density per stage (suffix _s<k>); unsuffixed: the last stage."""
        acc = MetricAccumulator()
        for batch in batches:
            gt = batch['disparity'][:, 0].cpu().numpy()
            valid = None if batch.get('valid') is None else batch['valid'][:, 0].cpu().numpy()
            preds = self._stage_predictions(model, batch)
            for k, pred in enumerate(preds, 1):
                m = stereo_metrics(pred[:, 0].cpu().numpy(), gt, valid, max_disparity=self.cfg.data.max_disparity)
                acc.update({f'{key}_s{k}': v for key, v in m.items()})
                if k == len(preds):
                    acc.update(m)
        return acc.mean()

    def labelled_predictions(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        return [(f'stage {k}', p) for k, p in enumerate(self._stage_predictions(model, batch), 1)]


class MonoTask(Task):
    """Monocular depth: supervised terms, ranking on pairs, distillation from a teacher."""

    kind = 'mono'

    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        targets = {t for _, _, t in self.terms.values()}
        self.teacher: nn.Module | None = None
        self.teacher_scale = 1.0
        if targets & {'teacher', 'feature'}:
            if not cfg.loss.teacher:
                raise ValueError('kd_pixel / kd_pairwise loss terms need loss.teacher (a checkpoint)')
            self.teacher, self.teacher_scale = load_teacher(cfg.loss.teacher, cfg.data.f_canonical, device)

    @property
    def best_metric(self) -> str:
        return 'absrel'

    def train_module(self, model: nn.Module) -> nn.Module:
        return WithFeatures(model)

    def unused_parameters(self, model: nn.Module) -> bool:
        has_aux = bool(getattr(getattr(model, 'config', None), 'aux_heads', False))
        return has_aux and not any(loss.head_weights for loss, _, _ in self.terms.values())

    def _term(self, loss: Loss, pred: Any, target: torch.Tensor, valid: torch.Tensor | None,
              batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One loss on the prediction heads (all with head weights, else the final one, resized
        to the target through a single-head weighting when the sizes differ)."""
        missing = [k for k in loss.needs if k not in batch]
        if missing:
            raise KeyError(f"loss {loss.name!r} needs the batch input(s) {missing}, which data.source does not "
                           f"provide (e.g. 'held': mono renders of content held or boards)")
        inputs = {k: batch[k] for k in loss.needs}
        heads = list(pred) if isinstance(pred, (list, tuple)) else [pred]
        if loss.head_weights is None:
            heads = heads[:1]
            if target.dim() == 4 and heads[0].shape[-2:] != target.shape[-2:]:
                loss = dataclasses.replace(loss, head_weights=(1.0,))
            else:
                return loss(heads[0], target, valid, **inputs)
        return loss(heads, target, valid, **inputs)

    def losses(self, module: nn.Module, batch: dict[str, torch.Tensor], autocast: Any) -> dict[str, torch.Tensor]:
        image, valid = batch['image'], batch.get('valid')
        with autocast:
            pred, feat = module(image)
            teacher = None
            if self.teacher is not None:
                with torch.no_grad():
                    teacher = self.teacher.forward_with_features(image)
        pred, feat = _float(pred), feat.float()
        pairs = batch.get('pairs')
        values: dict[str, torch.Tensor] = {}
        for name, (loss, weight, target) in self.terms.items():
            if target == 'gt':
                value = self._term(loss, pred, batch['depth'], valid, batch)
            elif target == 'pairs':
                if pairs is None:  # dense ground truth: sample relative-depth pairs from it
                    pairs = sample_depth_pairs(batch['depth'], valid, self.cfg.data.pairs, self.cfg.data.pair_equal)
                value = self._term(loss, pred, pairs, None, batch)
            elif target == 'teacher':
                value = self._term(loss, pred, teacher[0].float() * self.teacher_scale, None, batch)
            else:
                value = loss(feat, teacher[1].float())
            values[name] = weight * value
        return values

    @torch.no_grad()
    def _predict(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eval-mode depth (B, 1, H, W) at the input size (bilinear if the output is smaller)."""
        pred = model(batch['image']).float()
        size = batch['image'].shape[-2:]
        return pred if pred.shape[-2:] == size else F.interpolate(pred, size=size, mode='bilinear',
                                                                   align_corners=False)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Depth metrics (absrel, rmse, delta1 ...) where depth is given, WHDR where pairs are."""
        acc = MetricAccumulator()
        cap = self.cfg.data.max_depth or None
        for batch in batches:
            pred = self._predict(model, batch)[:, 0].cpu().numpy()
            if 'depth' in batch:
                valid = None if batch.get('valid') is None else batch['valid'][:, 0].cpu().numpy()
                acc.update(depth_metrics(pred, batch['depth'][:, 0].cpu().numpy(), valid, max_depth=cap))
            if 'pairs' in batch:
                acc.update({'whdr': whdr(pred, batch['pairs'].cpu().numpy().astype(np.float64))})
        return acc.mean()

    def labelled_predictions(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        return [('prediction', self._predict(model, batch))]


def load_teacher(path: str, f_canonical: float, device: torch.device) -> tuple[nn.Module, float]:
    """A frozen eval-mode teacher from its checkpoint (.pt), model card (.json) or shipped model's
    name (the card's torch weights), and the factor that converts its depth to this run's
    canonical camera (f_canonical / teacher's f_canonical, 1 if either is unset)."""
    from depth_ros.nets.checkpoint import is_checkpoint, load_checkpoint

    if is_checkpoint(path):
        teacher, ckpt = load_checkpoint(path)
        f_teacher = (ckpt.get('card') or {}).get('f_canonical') or 0.0
    else:
        from depth_ros.model_card import find_card, load_card
        from depth_ros.nets.from_onnx import load_card_weights

        card = load_card(find_card(path))
        teacher, f_teacher = load_card_weights(card), card.f_canonical or 0.0
    teacher.requires_grad_(False)
    scale = f_canonical / f_teacher if f_canonical and f_teacher else 1.0
    return teacher.to(device).eval(), float(scale)


def make_task(kind: str, cfg: TrainConfig, device: torch.device) -> Task:
    """StereoTask or MonoTask for a model kind ('stereo' | 'mono')."""
    return {'stereo': StereoTask, 'mono': MonoTask}[kind](cfg, device)
