"""depth-ros-export: a registered network (untrained) or a trainer checkpoint to ONNX graphs plus a model card.

    depth-ros-export --checkpoint runs/anynet/best.pt --name anynet_spn8 --out models/
    depth-ros-export --checkpoint runs/anynet/best.pt --option spn_channels=0 --name anynet --out models/
    depth-ros-export --arch fastdepth --input-size 224 224 --out /tmp/models

Stereo networks give one graph per stage count (<name>.s<k>.onnx), mono networks <name>.onnx;
the torch weights <name>.weights.npz (for fine-tuning: model.init=<card>); the card is
<name>.json (see depth_ros.model_card). --option with --checkpoint derives a model from the
checkpoint's tensors (above: AnyNet without its SPN from an SPN run).
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from . import import_training, parser

PROG = 'depth-ros-export'


def parse_option(text: str) -> tuple[str, Any]:
    """'key=value' -> (key, Python literal of value, or the raw string)."""
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'options are key=value, not {text!r}')
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def build_parser() -> argparse.ArgumentParser:
    p = parser(PROG, __doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--arch', help='registered architecture (exported untrained)')
    src.add_argument('--checkpoint', type=Path, help='checkpoint .pt written by the trainer')
    p.add_argument('--option', type=parse_option, action='append', default=[], metavar='KEY=VALUE',
                   help='create_model option, repeatable (with --checkpoint: overrides its options, keeping the '
                   'tensors the derived model shares, e.g. spn_channels=0)')
    p.add_argument('--name', help='file stem of the card and graphs (default: the arch)')
    p.add_argument('--out', type=Path, default=Path('models'), help='output folder (default: models)')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset (default: 17)')
    p.add_argument('--fp16', action='store_true', help='store weights as float16 (float32 I/O and math)')
    p.add_argument('--static', action='store_true', help='fixed input size instead of dynamic H/W')
    p.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                   help="tracing/card size, px (default: the checkpoint's training size, else the network's)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    checkpoint = import_training(PROG, 'depth_ros.nets.checkpoint')
    export = import_training(PROG, 'depth_ros.nets.export')
    from depth_ros.model_card import load_card

    try:
        if args.checkpoint:
            ckpt = checkpoint.read_checkpoint(args.checkpoint)
            arch, options, state, card = ckpt['arch'], ckpt.get('options', {}), ckpt['model'], ckpt.get('card')
            if args.option:
                options = {**options, **dict(args.option)}
                state, card = checkpoint.derive_state(arch, options, state, card, str(args.checkpoint))
        else:
            arch, options, state, card = args.arch, dict(args.option), None, None
        size = args.input_size or checkpoint.checkpoint_input_size(card)
        card_path = export.export_model(arch, args.out, name=args.name, options=options, state_dict=state,
                                        input_size=tuple(size) if size else None, opset=args.opset,
                                        dynamic=not args.static, fp16=args.fp16, card=card)
    except KeyError as e:  # an unknown architecture
        sys.exit(f'{PROG}: {e.args[0]}')
    except (OSError, ValueError, TypeError, RuntimeError) as e:  # files, options, state dicts
        sys.exit(f'{PROG}: {e}')
    written = load_card(card_path)
    for g in written.graphs:
        path = written.directory / g.file
        print(f'wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {g.stages} stage(s))')
    if written.torch_weights:
        path = written.directory / written.torch_weights['file']
        print(f'wrote {path} ({path.stat().st_size / 1e6:.2f} MB, torch weights for fine-tuning)')
    print(f'wrote {card_path} (trained: {str(written.trained).lower()})')


if __name__ == '__main__':
    main()
