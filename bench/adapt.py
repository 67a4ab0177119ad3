"""README figures of depth-ros-adapt: a synthetic recording that looks unlike the training renders
(photographs on the surfaces, an imperfect camera pair: blur, dim exposure, noise, tone curve,
JPEG, 0.5 px rectification error), adaptation on its first 70 %, bad-3 (stereo) and metric
AbsRel (mono, the camera's fx, no median scaling) on the last 30 % against ground truth the
adaptation never saw, shipped vs adapted, through ONNX Runtime as the nodes run them.

    python bench/adapt.py [--bag /tmp/adapt_bag] [--out /tmp/adapt_models] [--frames 120] [--steps 150]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from depth_ros.recordings.record import record_synthetic
from depth_ros.training.cli import adapt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--bag', type=Path, default=Path('/tmp/adapt_bag'))
    p.add_argument('--out', type=Path, default=Path('/tmp/adapt_models'))
    p.add_argument('--frames', type=int, default=120)
    p.add_argument('--steps', type=int, default=150)
    p.add_argument('--mono-steps', type=int, default=150)
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args()
    if not args.bag.exists():
        record_synthetic(args.bag, frames=args.frames, size=(640, 480), seed=5, photos=True, camera=3)
    report = adapt.run(adapt.build_parser().parse_args(
        [str(args.bag), '--out', str(args.out), '--steps', str(args.steps), '--mono-steps', str(args.mono_steps),
         '--threads', str(args.threads)]))
    print(json.dumps(report, indent=2))
    gt, sup = report['ground_truth'], report['stereo_losses']
    print(f'\nrecording: {args.bag} ({args.frames} frames 640x480), scored on frames {gt["frames"]}; '
          f'{report["elapsed_s"]:.0f} s on {args.threads} CPU threads\n')
    print('| | bad-3 (stereo) | EPE px | AbsRel (mono, metric) | delta1 (mono) | photometric loss, held out |')
    print('|---|---|---|---|---|---|')
    for when in ('before', 'after'):
        g, s = gt[when], sup['held_out_frames'][when]
        print(f'| {"shipped" if when == "before" else "adapted"} | {g["bad3"]:.3f} | {g["epe"]:.2f} | '
              f'{g["absrel"]:.3f} | {g["delta1"]:.3f} | {s["photometric"]:.4f} |')


if __name__ == '__main__':
    main()
