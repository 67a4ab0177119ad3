"""depth-ros-evaluate: metrics of a model through the runtime path (what the ROS nodes give).

    depth-ros-evaluate --model models/anynet_spn8.json --data synthetic --n 50 --out metrics.json
    depth-ros-evaluate --model runs/fastdepth/best.pt --data synthetic
    depth-ros-evaluate --model opencv_sgbm --data kitti_stereo:/data/kitti2015 --n 200
    depth-ros-evaluate --model fastdepth --data synthetic --update-card

--data is 'synthetic' or '<reader>:<path>', the readers: diode, diw, kitti_depth,
kitti_stereo, middlebury, nyu, nyu_mat, rendered (depth-ros-render's folders), sceneflow.
Stereo models are also compared with OpenCV SGBM on the same pairs; anytime networks get
metrics per stage count. --update-card writes the metrics into the model card under
'<data>/<split>' (nothing else in the card changes).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from depth_ros.model_card import ModelCardError, find_card

from . import import_training, parser

PROG = 'depth-ros-evaluate'


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """--data, --split, --n, --size, --max-depth (shared with depth-ros-compare)."""
    p.add_argument('--data', default='synthetic', help="'synthetic' (default) or '<reader>:<path>'")
    p.add_argument('--split', default='val', help="'val' (held-out) or 'train'; reader splits as the reader names them")
    p.add_argument('--n', type=int, default=20, help='number of samples (default: 20)')
    p.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'),
                   help="synthetic image size (default: the model's training/export size, else 256 512)")
    p.add_argument('--max-depth', type=float, help='mono: cap of the ground truth depth, m')


def resolve_size(args: argparse.Namespace, infos: list[dict[str, Any]]) -> tuple[int, int]:
    """--size, else the first model's training/export size, else 256x512."""
    if args.size:
        return tuple(args.size)
    for info in infos:
        if info['size']:
            return int(info['size'][0]), int(info['size'][1])
    return 256, 512


def max_disparity_of(infos: list[dict[str, Any]]) -> float:
    """The largest max_disparity of the models (192, AnyNet's, if none says)."""
    values = [float(i['max_disparity']) for i in infos if i.get('max_disparity')]
    return max(values) if values else 192.0


def update_card(model: str, key: str, metrics: dict[str, Any]) -> Path:
    """Set card['metrics'][key] = metrics in the model card JSON, leaving everything else as is."""
    path = find_card(model)
    data = json.loads(path.read_text())
    data.setdefault('metrics', {})[key] = metrics
    path.write_text(json.dumps(data, indent=2) + '\n')
    return path


def build_parser() -> argparse.ArgumentParser:
    p = parser(PROG, __doc__)
    p.add_argument('--model', required=True, help='model card / name / .onnx, .pt checkpoint, opencv_sgbm or opencv_bm')
    add_data_arguments(p)
    p.add_argument('--out', type=Path, help='write the metrics as JSON here')
    p.add_argument('--update-card', action='store_true', help="store the metrics in the model's card")
    p.add_argument('--no-sgbm', action='store_true', help='stereo: skip the OpenCV SGBM reference')
    p.add_argument('--input-scale', type=float, default=1.0,
                   help='stereo networks: resize the pair by this before matching (the node parameter; default: 1)')
    p.add_argument('--fusion', default='none', choices=('none', 'sgbm'),
                   help="stereo networks: fuse with SGBM where it is confident (the node parameter; default: none)")
    p.add_argument('--spn-limit', type=float,
                   help="stereo networks: px the SPN stage may move stage 3's disparity (the node parameter; "
                        "default: the card's, 0: no limit)")
    p.add_argument('--label', help="name of the data in the card's metrics (default: --data)")
    return p


def load_data(prog: str, evaluation: Any, args: argparse.Namespace, kind: str, size: tuple[int, int],
              max_disp: float) -> list[dict[str, Any]]:
    """The samples of --data, or exit with one line (an unknown reader, a missing folder)."""
    try:
        return evaluation.load_samples(args.data, kind, args.n, size, args.split, max_disp)
    except (ValueError, OSError) as e:
        sys.exit(f'{prog}: --data {args.data}: {e}')


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    evaluation = import_training(PROG, 'depth_ros.training.evaluation')
    try:
        evaluation.parse_source(args.data)
    except ValueError as e:
        sys.exit(f'{PROG}: {e}')
    if args.update_card and (evaluation.is_checkpoint(args.model) or args.model in ('opencv_sgbm', 'opencv_bm')):
        sys.exit(f'{PROG}: --update-card needs a model with a card (export the checkpoint first)')
    if args.update_card and (args.fusion != 'none' or args.spn_limit is not None):
        sys.exit(f"{PROG}: --update-card stores the network alone with its card's settings: drop --fusion and "
                 '--spn-limit')
    try:
        info = evaluation.describe(args.model)
    except (ModelCardError, ValueError) as e:
        sys.exit(f'{PROG}: {e}')
    kind, size, max_disp = info['kind'], resolve_size(args, [info]), max_disparity_of([info])
    samples = load_data(PROG, evaluation, args, kind, size, max_disp)
    result = evaluation.evaluate_model(args.model, samples, kind, max_disp, args.max_depth, args.input_scale,
                                       args.fusion, args.spn_limit)
    report: dict[str, Any] = {'model': result['name'], 'kind': kind, 'data': args.label or args.data,
                              'split': args.split, 'n': len(samples), 'metrics': result['metrics']}
    if kind == 'stereo' and args.input_scale != 1.0:
        report['input_scale'] = args.input_scale
    if kind == 'stereo' and args.fusion != 'none':
        report['fusion'] = args.fusion
    if kind == 'stereo' and args.spn_limit is not None:
        report['spn_limit'] = args.spn_limit
    if args.data == 'synthetic':
        report['size'] = list(size)
    if 'stages' in result:
        report['stages'] = result['stages']
    if kind == 'stereo' and args.model != 'opencv_sgbm' and not args.no_sgbm:
        sgbm = evaluation.evaluate_model('opencv_sgbm', samples, kind, max_disp)
        report['opencv_sgbm'] = sgbm['metrics']
        report['on_sgbm_pixels'] = evaluation.stereo_metrics_where(result['predictions'], sgbm['predictions'], samples)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + '\n')
    if args.update_card:
        card_metrics = {k: report[k] for k in ('n', 'size', 'input_scale', 'metrics', 'stages', 'opencv_sgbm',
                                               'on_sgbm_pixels') if k in report}
        key = f'{report["data"]}/{args.split}' + (f'@{args.input_scale:g}' if 'input_scale' in report else '')
        print(f'updated {update_card(args.model, key, card_metrics)}', file=sys.stderr)


if __name__ == '__main__':
    main()
