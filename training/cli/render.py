"""depth-ros-render: render a synthetic dataset to disk once (numpy renderer, parallel processes).

    depth-ros-render stereo out/stereo --n 4000 --size 256 512
    depth-ros-render mono out/mono --n 6000 --seed 1 --workers 2
    depth-ros-render textures                      # photo texture bank from installed packages
    depth-ros-render stereo out/real --textures --content rich --hfov 15 100

Training recipes and depth-ros-evaluate read it back as 'rendered:<root>'. Samples already in
<root> are kept, so an interrupted render resumes; the same --seed gives the same samples.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from depth_ros.synthetic.sampler import CONTENTS
from depth_ros.synthetic.textures import CACHE, collect

from . import import_training, parser

PROG = 'depth-ros-render'


def build_parser() -> argparse.ArgumentParser:
    p = parser(PROG, __doc__)
    p.add_argument('kind', choices=('stereo', 'mono', 'textures'),
                   help='stereo pairs with disparity, images with depth, or the photo texture bank')
    p.add_argument('root', nargs='?', help='output folder (created; samples already there are kept; '
                   'textures: default ~/.cache/depth_ros/textures)')
    p.add_argument('--n', type=int, default=4000, help='number of samples, rounded up to a multiple of 8 '
                   '(default: 4000)')
    p.add_argument('--size', type=int, nargs=2, default=(256, 512), metavar=('H', 'W'),
                   help='image size, px (default: 256 512)')
    p.add_argument('--seed', type=int, default=0, help='seed of the scenes and cameras (default: 0)')
    p.add_argument('--max-disparity', type=float, default=192.0,
                   help='stereo: disparities from this on are stored as invalid, px (default: 192)')
    p.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                   help='rendering processes (default: the CPU count)')
    p.add_argument('--hfov', type=float, nargs=2, default=(45.0, 100.0), metavar=('MIN', 'MAX'),
                   help='range of horizontal fields of view, degrees (default: 45 100)')
    p.add_argument('--textures', nargs='?', const='default', default='',
                   help='map photographs of this bank onto surfaces (no value: the default cache; '
                   'default: procedural textures only)')
    p.add_argument('--photo-prob', type=float, default=0.5,
                   help='share of surfaces showing a photograph (default: 0.5)')
    p.add_argument('--content', choices=CONTENTS, default='basic',
                   help='rich: thin rods, fences, rings and grids, objects at real sizes; held: rich + a flat '
                        'object held 0.35-2 m before the camera in 70 %% of the scenes; boards: rich + a larger '
                        'board slanted up to 60 deg in 90 %%, half with a periodic pattern (default: basic)')
    return p


def main(argv: Sequence[str] | None = None) -> None:
    p = build_parser()
    args = p.parse_args(argv)
    if args.kind == 'textures':
        dest = args.root or str(CACHE)
        print(f'{collect(dest)} textures in {dest}')
        return
    if args.root is None:
        p.error('the output folder is required')
    if args.n < 1 or min(args.size) < 8 or args.workers < 1:
        sys.exit(f'{PROG}: --n and --workers must be >= 1 and --size at least 8 8')
    rendered = import_training(PROG, 'depth_ros.training.data.rendered')
    textures = str(CACHE) if args.textures == 'default' else args.textures
    look = rendered.Look(tuple(args.hfov), textures, args.photo_prob, args.content)
    root = rendered.render_dataset(args.root, args.kind, args.n, tuple(args.size), args.seed, args.max_disparity,
                                   args.workers, look)
    print(f'{len(rendered.Rendered(root))} {args.kind} samples in {root}')


if __name__ == '__main__':
    main()
