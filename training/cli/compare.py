"""depth-ros-compare: several models side by side on the same samples (runtime path).

    depth-ros-compare --models anynet_spn8 opencv_sgbm runs/anynet/best.pt --data synthetic --out cmp/
    depth-ros-compare --models fastdepth mbv2_fbnet --data diode:/data/diode_val --n 50 --out cmp/

Writes <out>/comparison.md (a markdown table of the metrics), <out>/comparison.json and
<out>/comparison.png (per sample: the input, every model's prediction and the ground truth,
on one colour scale per row). All models must be of one kind (stereo or mono).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from depth_ros.model_card import ModelCardError

from .. import plots
from . import import_training, parser
from .evaluate import add_data_arguments, load_data, max_disparity_of, resolve_size

PROG = 'depth-ros-compare'

COLUMNS = {'stereo': ('epe', 'bad1', 'bad3', 'd1', 'density', 'ms'),
           'mono': ('absrel', 'rmse', 'mae', 'delta1', 'delta2', 'whdr', 'ms')}


def markdown_table(kind: str, rows: list[tuple[str, dict[str, float]]], title: str) -> str:
    """Markdown: one row per model, the kind's key metrics as columns (lower is better except
    delta and density)."""
    cols = [c for c in COLUMNS[kind] if any(c in m for _, m in rows)]
    lines = [f'## {title}', '', '| model | ' + ' | '.join(cols) + ' |', '|---' * (len(cols) + 1) + '|']
    for name, metrics in rows:
        cells = [f'{metrics[c]:.4g}' if c in metrics and math.isfinite(metrics[c]) else '-' for c in cols]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def figure(path: Path, kind: str, samples: list[dict[str, Any]], results: list[dict[str, Any]], count: int) -> Path:
    """Input / predictions / ground truth for the first ``count`` samples."""
    rows = []
    for i, sample in enumerate(samples[:count]):
        maps = [(r['name'], r['predictions'][i]) for r in results]
        gt = sample.get('disparity' if kind == 'stereo' else 'depth')
        rows.append((sample['left' if kind == 'stereo' else 'image'], maps, gt))
    return plots.sample_figure(path, rows, f'{len(results)} models, {len(samples)} samples',
                               'px' if kind == 'stereo' else 'm')


def build_parser() -> argparse.ArgumentParser:
    p = parser(PROG, __doc__)
    p.add_argument('--models', nargs='+', required=True, help='cards / names / .onnx / .pt / opencv_sgbm / opencv_bm')
    add_data_arguments(p)
    p.add_argument('--out', type=Path, required=True, help='output folder')
    p.add_argument('--figure-samples', type=int, default=3, help='samples shown in comparison.png (default: 3)')
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    evaluation = import_training(PROG, 'depth_ros.training.evaluation')
    try:
        evaluation.parse_source(args.data)
        infos = [evaluation.describe(m) for m in args.models]
    except (ModelCardError, ValueError) as e:
        sys.exit(f'{PROG}: {e}')
    kinds = {i['kind'] for i in infos}
    if len(kinds) != 1:
        mixed = ', '.join(f"{i['name']}: {i['kind']}" for i in infos)
        sys.exit(f'{PROG}: models mix kinds ({mixed})')
    kind = kinds.pop()
    max_disp = max_disparity_of(infos)
    samples = load_data(PROG, evaluation, args, kind, resolve_size(args, infos), max_disp)
    results = [evaluation.evaluate_model(m, samples, kind, max_disp, args.max_depth) for m in args.models]
    args.out.mkdir(parents=True, exist_ok=True)
    title = f'{args.data} ({args.split}, {len(samples)} samples)'
    table = markdown_table(kind, [(r['name'], r['metrics']) for r in results], title)
    (args.out / 'comparison.md').write_text(table)
    summary = {'data': args.data, 'split': args.split, 'n': len(samples), 'kind': kind,
               'models': {r['name']: {k: r[k] for k in ('metrics', 'stages') if k in r} for r in results}}
    (args.out / 'comparison.json').write_text(json.dumps(summary, indent=2) + '\n')
    fig = figure(args.out / 'comparison.png', kind, samples, results, args.figure_samples)
    print(table)
    print(f'wrote {args.out / "comparison.md"}, {args.out / "comparison.json"}, {fig}')


if __name__ == '__main__':
    main()
