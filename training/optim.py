"""Optimisers and learning-rate schedules (a pure function of the step, so resuming is exact)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .config import OptimConfig, ScheduleConfig

OPTIMIZERS = ('adam', 'adamw', 'sgd')
SCHEDULES = ('constant', 'step', 'multistep', 'cosine')


def freeze_except(model: nn.Module, prefixes: list[str]) -> list[nn.Module]:
    """Only parameters whose names start with one of ``prefixes`` train (all when empty); returns
    the modules left without a trainable parameter, which the trainer keeps in eval mode (BatchNorm
    statistics and dropout frozen too). Raises when a prefix names no parameter."""
    if not prefixes:
        return []
    names = [n for n, _ in model.named_parameters()]
    unknown = [p for p in prefixes if not any(n.startswith(p) for n in names)]
    if unknown:
        top = sorted({n.split('.')[0] for n in names})
        raise ValueError(f'model.trainable {unknown} names no parameter (top-level modules: {", ".join(top)})')
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(tuple(prefixes)))
    return [m for m in model.modules()
            if any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights of convs/linears decay, biases and norm parameters (ndim <= 1) do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    return [{'params': decay, 'weight_decay': weight_decay}, {'params': no_decay, 'weight_decay': 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD (momentum, optional Nesterov) over ``model``'s trainable parameters."""
    groups = param_groups(model, cfg.weight_decay)
    name = cfg.name.lower()
    if name in ('adam', 'adamw'):
        cls = torch.optim.Adam if name == 'adam' else torch.optim.AdamW
        return cls(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    if name == 'sgd':
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    raise ValueError(f'unknown optimizer {cfg.name!r}; known: {", ".join(OPTIMIZERS)}')


def total_steps(cfg: ScheduleConfig, iters_per_epoch: int) -> int:
    """Optimiser steps of the whole run: ``max_steps``, else ``epochs`` * iterations per epoch."""
    return cfg.max_steps if cfg.max_steps > 0 else max(1, round(cfg.epochs * iters_per_epoch))


def lr_at(step: int, base_lr: float, cfg: ScheduleConfig, iters_per_epoch: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up over ``warmup_steps``,
    then the named schedule over epochs (step / multistep) or the whole run (cosine)."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return base_lr * (step + 1) / cfg.warmup_steps
    epoch = step / max(iters_per_epoch, 1)
    if cfg.name == 'constant':
        return base_lr
    if cfg.name == 'step':
        return base_lr * cfg.gamma ** math.floor(epoch / cfg.step_epochs + 1e-9)
    if cfg.name == 'multistep':
        return base_lr * cfg.gamma ** sum(epoch + 1e-9 >= m for m in cfg.milestones)
    if cfg.name == 'cosine':
        total = total_steps(cfg, iters_per_epoch)
        span = max(total - cfg.warmup_steps, 1)
        progress = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
        return cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f'unknown schedule {cfg.name!r}; known: {", ".join(SCHEDULES)}')


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in optimizer.param_groups:
        group['lr'] = lr
