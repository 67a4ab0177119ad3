"""The training loop: one :class:`Trainer` per process, driven by a :class:`~.config.TrainConfig`.

    trainer = Trainer(cfg, resume=True)     # picks up <out>/last.pt when it exists
    summary = trainer.run(max_minutes=9)    # stops cleanly (with a checkpoint) after 9 minutes
    trainer.close()

Per step: learning rate from the schedule (a function of the step), a batch from the stream,
the task's loss terms under autocast, (rebalanced) sum, scaled backward, optional gradient
clipping, optimiser step. Every ``log_every`` steps (every step when rebalancing) the loss
terms are averaged over the processes, logged and checked for NaN. Validation on the fixed
held-out batches every ``eval_every`` steps (rank 0), ``last.pt`` every ``ckpt_every`` steps or
``ckpt_minutes`` minutes, ``best.pt`` when the validation metric improves.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from depth_ros.nets import create_model, model_kind
from depth_ros.nets.checkpoint import card_info, init_state, read_checkpoint, save_state

from . import distributed, plots, rng, streams
from .config import TrainConfig, config_from_dict_raw, dump_config, train_size
from .logger import RunLogger
from .losses import LossRebalancer
from .optim import build_optimizer, freeze_except, lr_at, set_lr, total_steps
from .tasks import make_task

IMAGE_KEYS = ('image', 'left', 'right')
LAST, BEST = 'last.pt', 'best.pt'  # checkpoints in the run folder


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``system.amp``: None (off) on the CPU or with 'off'."""
    if mode not in ('auto', 'off', 'bf16', 'fp16'):
        raise ValueError(f"system.amp must be auto, off, bf16 or fp16, not {mode!r}")
    if mode == 'off' or device.type != 'cuda':
        return None
    if mode == 'auto':
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == 'bf16' else torch.float16


def resume_config(cfg: TrainConfig) -> TrainConfig:
    """The config saved in ``<out>/last.pt`` if it exists (a resumed run keeps its schedule), else ``cfg``."""
    path = cfg.out_dir / LAST
    return config_from_dict_raw(read_checkpoint(path)['config']) if path.is_file() else cfg


class Trainer:
    """Model, data, optimiser and logs of one training process; ``run`` trains."""

    def __init__(self, cfg: TrainConfig, *, resume: bool = False):
        self.cfg = cfg
        self.dist = distributed.setup(cfg.system.device)
        self.device = device = self.dist.device
        self.main = self.dist.is_main
        self.out = cfg.out_dir
        if cfg.system.threads:
            torch.set_num_threads(cfg.system.threads)
        rng.seed_everything(cfg.system.seed + self.dist.rank)
        if device.type == 'cuda':
            torch.backends.cudnn.benchmark = not cfg.system.deterministic
            torch.backends.cudnn.deterministic = cfg.system.deterministic
            torch.set_float32_matmul_precision('high')  # TF32 matmuls (cuDNN convs use TF32 by default)

        self.kind = model_kind(cfg.model.arch)
        self.model = create_model(cfg.model.arch, **cfg.model.options).to(device)
        if cfg.model.init:
            arch, state = init_state(cfg.model.init)
            if arch != cfg.model.arch:
                raise ValueError(f'model.init {cfg.model.init} holds a {arch!r} network, not {cfg.model.arch!r}')
            if not cfg.model.init_narrowed:
                self.model.load_state_dict(state)
            elif hasattr(self.model, 'load_narrowed'):
                self.model.load_narrowed(state)
            else:
                raise ValueError(f'model.init_narrowed: {cfg.model.arch!r} cannot start from a wider network')
        self.frozen = freeze_except(self.model, list(cfg.model.trainable))
        self.task = make_task(self.kind, cfg, device)
        self.stream = streams.train_stream(cfg, self.kind, device, self.dist.rank, self.dist.world)
        self.iters_per_epoch = self.stream.iters_per_epoch
        self.total_steps = total_steps(cfg.schedule, self.iters_per_epoch)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.amp = amp_dtype(cfg.system.amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == torch.float16)
        self.rebalancer = None
        if cfg.loss.rebalance:
            period = max(1, self.iters_per_epoch // max(cfg.loss.rebalance_per_epoch, 1))
            self.rebalancer = LossRebalancer(list(self.task.terms), period, cfg.loss.rebalance)
        self.step, self.elapsed = 0, 0.0
        self.best = {'metric': cfg.log.best_metric or self.task.best_metric, 'value': math.inf, 'step': -1}
        self.metrics: dict[str, float] = {}
        self.history: list[tuple[int, dict[str, float]]] = []  # (step, mean losses) at every sync
        self.resumed = resume and (self.out / LAST).is_file()
        if self.resumed:
            self._restore(self.out / LAST)
        self.module = self._wrap()
        self.val_batches: list[dict[str, torch.Tensor]] | None = None
        self.logger = None
        if self.main:
            self.logger = RunLogger(self.out, self.total_steps, self.step, resumed=self.resumed,
                                    tensorboard=cfg.log.tensorboard, progress=cfg.log.progress,
                                    plots_enabled=cfg.log.plots)
            (self.out / 'config.yaml').write_text(dump_config(cfg))

    # ------------------------------------------------------------------ setup
    def _wrap(self) -> nn.Module:
        """channels_last, SyncBatchNorm, DDP and torch.compile around the task's training module."""
        cfg = self.cfg
        if cfg.model.channels_last:
            self.model.to(memory_format=torch.channels_last)
        module = self.task.train_module(self.model)
        if self.dist.distributed:
            if cfg.system.sync_bn:
                module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
            ids = [self.device.index] if self.device.type == 'cuda' else None
            module = nn.parallel.DistributedDataParallel(
                module, device_ids=ids, find_unused_parameters=self.task.unused_parameters(self.model))
        if cfg.model.compile:
            module = torch.compile(module)
        return module

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for the forward passes (a no-op when AMP is off)."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp)

    def _prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.cfg.model.channels_last:
            batch = {k: v.contiguous(memory_format=torch.channels_last) if k in IMAGE_KEYS else v
                     for k, v in batch.items()}
        return batch

    # ------------------------------------------------------------------ one step
    def train_step(self, lr: float) -> dict[str, torch.Tensor]:
        """One optimiser step at learning rate ``lr``; returns detached 'loss' and each term."""
        set_lr(self.optimizer, lr)
        batch = self._prepare(self.stream.next_batch())
        terms = self.task.losses(self.module, batch, self.autocast())
        total = self.rebalancer.combine(terms) if self.rebalancer else sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {'loss': total.detach(), **{k: v.detach() for k, v in terms.items()}}

    def _sync(self, sums: dict[str, torch.Tensor], count: int,
              flags: list[bool]) -> tuple[dict[str, float], list[bool]]:
        """Mean of the accumulated values over steps and processes, and flags OR-ed over processes."""
        keys = list(sums)
        vec = torch.stack([sums[k].float() for k in keys]
                          + [torch.tensor(float(f), device=self.device) for f in flags])
        vec = distributed.all_reduce_sum(vec, self.dist).cpu()
        n = count * self.dist.world
        means = {k: float(vec[i]) / n for i, k in enumerate(keys)}
        return means, [bool(v > 0) for v in vec[len(keys):]]

    # ------------------------------------------------------------------ loop
    def run(self, max_minutes: float = 0.0, steps: int | None = None, save_on_exit: bool = True) -> dict[str, Any]:
        """Train until the schedule ends, ``max_minutes`` pass (then save and stop) or ``steps``
        more steps ran. ``save_on_exit=False`` leaves without a final checkpoint (as a killed
        run would). Returns a summary dict."""
        cfg, log = self.cfg, self.cfg.log
        start = last_save = time.time()
        elapsed0 = self.elapsed
        stop_at = self.total_steps if steps is None else min(self.total_steps, self.step + steps)
        sums: dict[str, torch.Tensor] = {}
        count, out_of_time = 0, False
        self.train_mode()
        while self.step < stop_at:
            values = self.train_step(lr_at(self.step, cfg.optim.lr, cfg.schedule, self.iters_per_epoch))
            self.step += 1
            self.elapsed = elapsed0 + time.time() - start
            for k, v in values.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
            count += 1
            now = time.time()
            flags = [bool(max_minutes) and now - start >= max_minutes * 60,
                     bool(log.ckpt_minutes) and now - last_save >= log.ckpt_minutes * 60]
            logged = self.step % log.log_every == 0 or self.step == stop_at
            if logged or self.rebalancer is not None:
                means, flags = self._sync(sums, count, flags)
                sums, count = {}, 0
                self._record(means, logged)
            elif self.dist.distributed:
                flags = [False, False]  # time decisions are taken together, at sync points
            out_of_time = flags[0]
            if self.step % log.eval_every == 0 or self.step == self.total_steps:
                self.validate()
            if self.step % log.ckpt_every == 0 or flags[1] or out_of_time or (self.step == stop_at and save_on_exit):
                self.save()
                last_save = time.time()
            if out_of_time:
                break
        return {'step': self.step, 'total_steps': self.total_steps, 'finished': self.step >= self.total_steps,
                'out_of_time': out_of_time, 'loss': self.history[-1][1]['loss'] if self.history else math.nan,
                'best': dict(self.best), 'metrics': dict(self.metrics), 'out': str(self.out)}

    def _record(self, means: dict[str, float], logged: bool) -> None:
        """Rebalance, keep the history, log; raise on a non-finite loss."""
        if not math.isfinite(means['loss']):
            raise FloatingPointError(f'loss is {means["loss"]} at step {self.step}: lower optim.lr, enable '
                                     'optim.grad_clip or check the data')
        if self.rebalancer is not None:
            self.rebalancer.update({k: means[k] for k in self.task.terms})
            means.update({f'w_{k}': w for k, w in self.rebalancer.weights.items()})
        self.history.append((self.step, means))
        if self.logger is not None:
            lr = self.optimizer.param_groups[0]['lr']
            self.logger.log_train(self.step, {'epoch': self.step / self.iters_per_epoch, 'lr': lr, **means},
                                  self.cfg.data.batch_size * self.dist.world, logged)

    def train_mode(self) -> None:
        """The model in training mode; with ``model.freeze_bn`` its BatchNorm layers stay in eval mode,
        and so do the modules ``model.trainable`` froze."""
        self.model.train()
        for m in self.frozen:
            m.eval()
        if self.cfg.model.freeze_bn:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict[str, float]:
        """Metrics on the held-out batches (rank 0; the other ranks wait); updates best.pt and plots."""
        if self.main:
            if self.val_batches is None:
                self.val_batches = streams.validation_batches(self.cfg, self.kind, self.device)
            self.model.eval()
            try:
                self.metrics = self.task.evaluate(self.model, self.val_batches)
                rows, unit = self.task.sample_rows(self.model, self.val_batches[0], 3)
            finally:
                self.train_mode()
            self.logger.log_val(self.step, self.metrics)
            value = self.metrics.get(self.best['metric'], math.nan)
            if math.isfinite(value) and value < self.best['value']:
                self.best.update(value=value, step=self.step)
                save_state(self._state(full=False), self.out / BEST)
            if self.cfg.log.plots:
                plots.sample_figure(self.out / 'samples.png', rows, f'{self.cfg.name} step {self.step}', unit)
                self.logger.plot_curves([self.best['metric']])
        distributed.barrier(self.dist)
        return self.metrics

    # ------------------------------------------------------------------ checkpoints
    def _device_name(self) -> str:
        """'cpu (N threads)' or the GPU's name, times the number of processes."""
        if self.device.type == 'cuda':
            name = torch.cuda.get_device_name(self.device)
        else:
            name = f'cpu ({torch.get_num_threads()} threads)'
        return f'{self.dist.world} x {name}' if self.dist.world > 1 else name

    def card(self) -> dict[str, Any]:
        """Model-card fields for export: training provenance and the latest validation metrics."""
        cfg = self.cfg
        samples = self.step * cfg.data.batch_size * self.dist.world
        size = train_size(vars(cfg.data))
        training = {'recipe': cfg.name, 'steps': self.step, 'samples': samples, 'data': cfg.data.source,
                    'input_size': size, 'loss': {k: dict(v) for k, v in cfg.loss.terms.items()},
                    'optimizer': cfg.optim.name, 'lr': cfg.optim.lr, 'seed': cfg.system.seed,
                    'elapsed_s': round(self.elapsed, 1), 'device': self._device_name()}
        metrics = {}
        if self.metrics:
            metrics['validation'] = {'data': cfg.data.val_source or cfg.data.source, 'step': self.step, **self.metrics}
        f_canonical = cfg.data.f_canonical if self.kind == 'mono' and cfg.data.f_canonical > 0 else None
        return card_info(True, training, metrics, f_canonical)

    def _state(self, full: bool, ranks: list[Any] | None = None) -> dict[str, Any]:
        state = {'arch': self.cfg.model.arch, 'options': dict(self.cfg.model.options), 'model': self.model.state_dict(),
                 'card': self.card(), 'config': self.cfg.to_dict(), 'step': self.step, 'best': dict(self.best),
                 'elapsed_s': self.elapsed}
        if full:
            state.update(optimizer=self.optimizer.state_dict(), scaler=self.scaler.state_dict(),
                         schedule={'step': self.step, 'lr': self.optimizer.param_groups[0]['lr'],
                                   'total_steps': self.total_steps, 'iters_per_epoch': self.iters_per_epoch},
                         rebalancer=self.rebalancer.state_dict() if self.rebalancer else None, ranks=ranks)
        return state

    def save(self) -> Path:
        """Write last.pt (every process takes part: their RNG and stream states are gathered)."""
        ranks = distributed.gather_objects({'rng': rng.rng_state(), 'stream': self.stream.state_dict()}, self.dist)
        path = self.out / LAST
        if self.main:
            save_state(self._state(full=True, ranks=ranks), path)
        distributed.barrier(self.dist)
        return path

    def _restore(self, path: Path) -> None:
        """Load model, optimiser, scaler, rebalancer, step, best, and this rank's RNG and stream state."""
        ckpt = read_checkpoint(path)
        if ckpt['arch'] != self.cfg.model.arch or dict(ckpt.get('options', {})) != dict(self.cfg.model.options):
            raise ValueError(f'{path} holds {ckpt["arch"]} {ckpt.get("options")}, the config asks for '
                             f'{self.cfg.model.arch} {self.cfg.model.options}')
        self.model.load_state_dict(ckpt['model'])
        self.optimizer.load_state_dict(ckpt['optimizer'])
        if self.scaler.is_enabled() and ckpt.get('scaler'):  # empty when saved without fp16
            self.scaler.load_state_dict(ckpt['scaler'])
        if self.rebalancer is not None and ckpt.get('rebalancer'):
            self.rebalancer.load_state_dict(ckpt['rebalancer'])
        self.step, self.elapsed = int(ckpt['step']), float(ckpt.get('elapsed_s', 0.0))
        self.best = dict(ckpt.get('best', self.best))
        ranks = ckpt.get('ranks') or []
        if len(ranks) == self.dist.world:
            rng.set_rng_state(ranks[self.dist.rank]['rng'])
            self.stream.load_state_dict(ranks[self.dist.rank]['stream'])
        else:  # a different number of processes: continue, but not bit-exactly
            rng.seed_everything(self.cfg.system.seed + self.dist.rank + 7919 * self.step)
            self.stream.skip_to(self.step)

    def close(self) -> None:
        """Close the logs and leave the process group (if this trainer created it)."""
        if self.logger is not None:
            self.logger.close()
        distributed.teardown(self.dist)


def train(cfg: TrainConfig, *, resume: bool = False, max_minutes: float = 0.0) -> dict[str, Any]:
    """Train (or continue, with ``resume``) the run described by ``cfg``; returns the summary."""
    trainer = Trainer(cfg, resume=resume)
    try:
        return trainer.run(max_minutes=max_minutes)
    finally:
        trainer.close()
