"""depth-ros-render: render a synthetic dataset to disk once (numpy renderer, parallel processes).

    depth-ros-render stereo out/stereo --n 4000 --size 256 512
    depth-ros-render mono out/mono --n 6000 --seed 1 --workers 2

Training recipes and depth-ros-evaluate read it back as 'rendered:<root>'. Samples already in
<root> are kept, so an interrupted render resumes; the same --seed gives the same samples.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import import_training, parser

PROG = 'depth-ros-render'


def build_parser() -> argparse.ArgumentParser:
    p = parser(PROG, __doc__)
    p.add_argument('kind', choices=('stereo', 'mono'), help='stereo pairs with disparity, or images with depth')
    p.add_argument('root', help='output folder (created; samples already there are kept)')
    p.add_argument('--n', type=int, default=4000, help='number of samples, rounded up to a multiple of 8 '
                   '(default: 4000)')
    p.add_argument('--size', type=int, nargs=2, default=(256, 512), metavar=('H', 'W'),
                   help='image size, px (default: 256 512)')
    p.add_argument('--seed', type=int, default=0, help='seed of the scenes and cameras (default: 0)')
    p.add_argument('--max-disparity', type=float, default=192.0,
                   help='stereo: disparities from this on are stored as invalid, px (default: 192)')
    p.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                   help='rendering processes (default: the CPU count)')
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.n < 1 or min(args.size) < 8 or args.workers < 1:
        sys.exit(f'{PROG}: --n and --workers must be >= 1 and --size at least 8 8')
    rendered = import_training(PROG, 'depth_ros.training.data.rendered')
    root = rendered.render_dataset(args.root, args.kind, args.n, tuple(args.size), args.seed, args.max_disparity,
                                   args.workers)
    print(f'{len(rendered.Rendered(root))} {args.kind} samples in {root}')


if __name__ == '__main__':
    main()
