"""Run logs: CSV files always, TensorBoard when installed, a progress bar (tqdm or plain lines).

``train.csv`` has one row per logged step (step, epoch, lr, loss, each loss term, samples/s,
elapsed s), ``val.csv`` one row per validation. On resume, rows after the resumed step are
dropped so the curves continue without a fork.
"""
from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from . import plots


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


class CSVLog:
    """Appends dict rows to a CSV file; new keys widen the header (the file is rewritten)."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        self.rows = _read_rows(path) if resume_step is not None else []
        if resume_step is not None:
            self.rows = [r for r in self.rows if int(float(r.get('step', 0))) <= resume_step]
        self.fields: list[str] = list(self.rows[0].keys()) if self.rows else []
        self._rewrite()

    def _rewrite(self) -> None:
        with open(self.path, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(self.rows)

    def append(self, row: Mapping[str, Any]) -> None:
        row = {k: (f'{v:.6g}' if isinstance(v, float) else v) for k, v in row.items()}
        self.rows.append(dict(row))
        if set(row) - set(self.fields):
            self.fields += [k for k in row if k not in self.fields]
            self._rewrite()
            return
        with open(self.path, 'a', newline='') as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow(row)

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of one column, skipping empty cells."""
        xs, ys = [], []
        for r in self.rows:
            if r.get(key) not in (None, ''):
                xs.append(float(r['step']))
                ys.append(float(r[key]))
        return xs, ys


class Progress:
    """tqdm bar when installed (and enabled), else a line every ``log_every`` steps."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, initial=initial, dynamic_ncols=True, unit='step')
            except ImportError:
                pass
        self.total = total

    def update(self, step: int, text: str, log_line: bool) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(text, refresh=False)
        elif self.enabled and log_line:
            print(f'step {step}/{self.total} {text}', file=sys.stderr, flush=True)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class RunLogger:
    """All outputs of rank 0: ``train.csv``, ``val.csv``, TensorBoard events, progress, plots."""

    def __init__(self, out: Path, total_steps: int, start_step: int, *, resumed: bool, tensorboard: bool,
                 progress: bool, plots_enabled: bool):
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        keep = start_step if resumed else None
        self.train = CSVLog(out / 'train.csv', keep)
        self.val = CSVLog(out / 'val.csv', keep)
        self.plots_enabled = plots_enabled
        self.progress = Progress(total_steps, start_step, progress)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(out / 'tensorboard'), purge_step=start_step if resumed else None)
            except ImportError:  # tensorboard not installed
                pass
        self._t0, self._last_step, self._last_time = time.time(), start_step, time.time()

    def log_train(self, step: int, values: Mapping[str, float], samples_per_step: int, log_line: bool) -> None:
        """Record one step's values (loss, lr, terms); a CSV row and a progress line when ``log_line``."""
        now = time.time()
        if log_line:
            rate = (step - self._last_step) * samples_per_step / max(now - self._last_time, 1e-9)
            self._last_step, self._last_time = step, now
            self.train.append({'step': step, **values, 'samples_per_s': rate, 'elapsed_s': now - self._t0})
            if self.tb is not None:
                for k, v in values.items():
                    self.tb.add_scalar(f'train/{k}', v, step)
        loss = values.get('loss', math.nan)
        self.progress.update(step, f'loss {loss:.4g} lr {values.get("lr", math.nan):.3g}', log_line)

    def log_val(self, step: int, metrics: Mapping[str, float]) -> None:
        self.val.append({'step': step, **metrics})
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(f'val/{k}', v, step)
        main = [k for k in metrics if '_s' not in k and not k.endswith('_pred')] or list(metrics)
        shown = ', '.join(f'{k} {metrics[k]:.4g}' for k in main[:8])
        self.progress.write(f'[val step {step}] {shown}')

    def plot_curves(self, val_keys: list[str]) -> None:
        """loss.png (training loss and terms) and val.png (the given validation metrics)."""
        if not self.plots_enabled:
            return
        terms = [k for k in self.train.fields if k not in ('step', 'epoch', 'lr', 'samples_per_s', 'elapsed_s')]
        if self.train.rows:
            plots.line_plot(self.out / 'loss.png', {k: self.train.series(k) for k in terms},
                            title='training loss', log_y=True)
        keys = [k for k in val_keys if k in self.val.fields]
        if self.val.rows and keys:
            plots.line_plot(self.out / 'val.png', {k: self.val.series(k) for k in keys}, title='validation')

    def message(self, text: str) -> None:
        self.progress.write(text)

    def close(self) -> None:
        self.progress.close()
        if self.tb is not None:
            self.tb.close()
