"""depth-ros-train: train a depth network from a recipe (or run the LR range test).

    depth-ros-train --recipe anynet_synthetic --out runs/anynet --max-minutes 9
    depth-ros-train --recipe anynet_synthetic --out runs/anynet --max-minutes 9 --resume   # next chunk
    depth-ros-train --recipe fastdepth_synthetic --find-lr
    torchrun --nproc_per_node 4 -m depth_ros.training.cli.train --recipe anynet_synthetic

With --resume the run continues from <out>/last.pt with the config saved in it (the same
schedule); --set overrides still apply on top. Exit status 0 also when --max-minutes stopped
the run early (the summary line says whether it finished).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ..config import ConfigError, apply_overrides, dump_config, list_recipes, load_recipe
from . import import_training, parser

PROG = 'depth-ros-train'


def build_parser() -> argparse.ArgumentParser:
    p = parser(PROG, __doc__)
    p.add_argument('--recipe', help='recipe name (see --list) or path to a YAML file')
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config value, e.g. optim.lr=1e-3 (repeatable)')
    p.add_argument('--out', help='run folder (default: runs/<recipe>)')
    p.add_argument('--max-minutes', type=float, default=0.0, help='stop cleanly with a checkpoint after M minutes')
    p.add_argument('--resume', action='store_true', help='continue from <out>/last.pt if it exists')
    p.add_argument('--find-lr', action='store_true', help='LR range test instead of training')
    p.add_argument('--lr-range', type=float, nargs=2, default=(1e-7, 10.0), metavar=('START', 'END'),
                   help='learning rates of the LR range test (default: 1e-7 10)')
    p.add_argument('--lr-steps', type=int, default=100, help='batches of the LR range test (default: 100)')
    p.add_argument('--list', action='store_true', help='list the shipped recipes and exit')
    p.add_argument('--print-config', action='store_true', help='print the resolved config and exit')
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.list:
        print('\n'.join(list_recipes()))
        return
    if not args.recipe:
        sys.exit(f'{PROG}: --recipe is required (see --list)')
    overrides = list(args.overrides) + ([f'log.out={args.out}'] if args.out else [])
    try:
        cfg = apply_overrides(load_recipe(args.recipe), overrides)
    except (ConfigError, KeyError, ValueError) as e:
        sys.exit(f'{PROG}: {e}')
    if args.print_config and not args.resume:
        print(dump_config(cfg), end='')
        return
    trainer = import_training(PROG, 'depth_ros.training.trainer')
    stream_setup = import_training(PROG, 'depth_ros.training.stream_setup')
    try:
        if args.resume:
            cfg = apply_overrides(trainer.resume_config(cfg), overrides)
        for source in (cfg.data.source, cfg.data.val_source):
            if source:
                stream_setup.parse_source(source)
    except (ConfigError, KeyError, ValueError) as e:
        sys.exit(f'{PROG}: {e}')
    if args.print_config:
        print(dump_config(cfg), end='')
        return
    if args.find_lr:
        run_lr_finder(cfg, args)
        return
    summary = trainer.train(cfg, resume=args.resume, max_minutes=args.max_minutes)
    if int(os.environ.get('RANK', '0')) == 0:
        print(json.dumps({k: summary[k] for k in ('step', 'total_steps', 'finished', 'out_of_time', 'loss',
                                                     'best', 'out')}))


def run_lr_finder(cfg, args: argparse.Namespace) -> None:
    """LR range test in one process; writes lr_finder.png / .csv in the run folder."""
    find_lr = import_training(PROG, 'depth_ros.training.lr_finder').find_lr
    from ..trainer import Trainer

    if int(os.environ.get('WORLD_SIZE', '1')) > 1:
        sys.exit(f'{PROG}: run --find-lr in a single process')
    cfg.log.tensorboard = cfg.log.progress = False
    trainer = Trainer(cfg)
    try:
        result = find_lr(trainer, *args.lr_range, steps=args.lr_steps, plot_path=trainer.out / 'lr_finder.png')
    finally:
        trainer.close()
    with open(trainer.out / 'lr_finder.csv', 'w') as f:
        f.write('lr,loss,smoothed\n')
        f.writelines(f'{a:.6g},{b:.6g},{c:.6g}\n' for a, b, c in zip(result.lrs, result.losses, result.smoothed))
    print(json.dumps({'suggested_lr': result.suggested_lr, 'plot': str(result.plot), 'tried': len(result.lrs)}))


if __name__ == '__main__':
    main()
