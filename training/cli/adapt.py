"""depth-ros-adapt: fit the shipped networks to your own stereo recording, without labels.

    depth-ros-adapt recording.bag --out models/adapted/
    depth-ros-adapt recording.bag --out models/adapted/ --steps 300 --mono-steps 300 --resume
    ros2 launch depth_ros stereo.launch.py model:=$PWD/models/adapted/anynet_spn8_adapted.json

The stereo network is fine-tuned on the first --share of the frames with self-supervised losses
(photometric reconstruction, smoothness, left-right consistency, SGBM's confident pixels, a pull
towards the shipped weights); the mono student is then distilled from it, learning this
camera's metric depth (the stereo baseline gives the scale). Writes ONNX graphs, torch weights
and model cards (training.adapted_from, the recording, steps, the self-supervised losses before
and after) under --out. When the recording has ground truth (depth-ros-record), the rest of
the frames score the shipped and the adapted models (cards' metrics.adapt_eval).
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from depth_ros.model_card import DEFAULT_STEREO

from . import import_training, parser

PROG = 'depth-ros-adapt'


def build_parser():
    p = parser(PROG, __doc__)
    p.add_argument('recording', type=Path, help='ROS 2 bag with a rectified stereo pair and camera_info')
    p.add_argument('--out', type=Path, default=Path('adapted'), help='output folder (default: adapted)')
    p.add_argument('--stereo', default=DEFAULT_STEREO,
                   help=f'stereo model: shipped name or card (default {DEFAULT_STEREO})')
    p.add_argument('--mono', default='mbv2_fbnet', help="mono student: shipped name or card ('' : none)")
    p.add_argument('--suffix', default='_adapted', help='appended to the models\' names (default _adapted)')
    p.add_argument('--share', type=float, default=0.7, help='share of the frames, from the start, adapted on')
    p.add_argument('--max-frames', type=int, default=0, help='read at most this many frames (0: all)')
    p.add_argument('--steps', type=int, default=150, help='stereo steps (default 150)')
    p.add_argument('--mono-steps', type=int, default=150, help='mono distillation steps (default 150; 0: no mono)')
    p.add_argument('--crop', type=int, nargs=2, default=(256, 384), metavar=('H', 'W'), help='stereo crop (px)')
    p.add_argument('--batch', type=int, default=2, help='stereo crops per step (default 2)')
    p.add_argument('--lr', type=float, default=5e-5, help='stereo learning rate (Adam)')
    p.add_argument('--mono-lr', type=float, default=1e-4, help='mono learning rate (Adam)')
    for name, default, what in (('smooth', 1e-2, 'edge-aware smoothness'), ('lr', 2e-2, 'left-right consistency'),
                                ('sgbm', 2e-2, "SGBM's confident pixels (0: off)"),
                                ('anchor', 1e-3, 'L2 pull towards the shipped weights')):
        p.add_argument(f'--w-{name}', type=float, default=default, help=f'weight of {what} (default {default:g})')
    p.add_argument('--seed', type=int, default=0, help='crop sampling seed')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    p.add_argument('--resume', action='store_true', help='continue from <out>/adapt_state.pt')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p


def _export(card: Any, model: Any, out: Path, name: str, training: dict[str, Any]) -> Path:
    """ONNX graphs + weights + card of an adapted model (AnyNet re-cut into step graphs)."""
    from depth_ros.nets.anynet_steps import split_card
    from depth_ros.nets.export import export_model

    path = export_model(card.arch, out, name=name, options=card.options, state_dict=model.state_dict(),
                        input_size=tuple(card.input['size']), dynamic=bool(card.input.get('dynamic', True)),
                        fp16=card.output.get('precision') == 'fp16',
                        card={'trained': True, 'training': training, 'metrics': {}, 'f_canonical': card.f_canonical})
    if card.arch == 'anynet':
        split_card(path)
    return path


def run(args) -> dict[str, Any]:
    """The whole adaptation; returns the report (also printed as JSON by main)."""
    import numpy as np
    import torch

    adapt = import_training(PROG, 'depth_ros.training.adapt')
    from depth_ros.inference import DepthEstimator
    from depth_ros.model_card import find_card, load_card
    from depth_ros.nets.from_onnx import load_card_weights
    from depth_ros.recordings.convert import Progress
    from depth_ros.recordings.frames import load_stereo_recording

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = adapt.AdaptConfig(share=args.share, steps=args.steps, mono_steps=args.mono_steps, crop=tuple(args.crop),
                            batch=args.batch, lr=args.lr, mono_lr=args.mono_lr, w_smooth=args.w_smooth,
                            w_lr=args.w_lr, w_sgbm=args.w_sgbm, w_anchor=args.w_anchor, seed=args.seed)
    start = time.monotonic()
    rec = load_stereo_recording(args.recording, args.max_frames)
    train, held = rec.split(cfg.share)
    if not train:
        raise ValueError(f'--share {cfg.share} of {len(rec)} frames leaves nothing to adapt on')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / adapt.STATE
    state: dict[str, Any] = {'stereo_step': 0, 'mono_step': 0}
    if args.resume and state_path.is_file():
        state = torch.load(state_path, map_location='cpu', weights_only=True)
    stream = None if args.quiet else sys.stderr
    print(f'{PROG}: {len(rec)} frames of {args.recording} ({rec.left[0].shape[1]}x{rec.left[0].shape[0]}, '
          f'fx {rec.fx:.1f} px, baseline {rec.baseline:.3f} m): adapting on {len(train)}, '
          f'{len(held)} held out', file=sys.stderr)

    stereo_card = load_card(find_card(args.stereo))
    stereo = load_card_weights(stereo_card)
    labels = adapt.sgbm_labels(rec, train) if cfg.w_sgbm else None
    adapter = adapt.StereoAdapter(stereo, stereo_card, rec, train, cfg, labels)
    held_crops = adapter.crops(np.random.default_rng([cfg.seed, 1 << 31]), cfg.probe, held) if held else []
    if 'stereo_model' in state:
        stereo.load_state_dict(state['stereo_model'])
        adapter.optimizer.load_state_dict(state['stereo_optimizer'])
    if 'stereo_before' not in state:
        state['stereo_before'] = adapter.probe()
        state['stereo_held_before'] = adapter.probe(held_crops) if held_crops else {}
    models, optims = {'stereo': stereo}, {'stereo': adapter.optimizer}

    def save() -> None:
        adapt.save_run(state_path, state, models, optims)

    adapt.run_steps('stereo', adapter, cfg.steps, state, save, Progress(cfg.steps, stream, 'stereo steps'))
    after = adapter.probe()
    training = {'adapted_from': stereo_card.name, 'recording': str(args.recording),
                'frames': f'0-{len(train) - 1} of {len(rec)}', 'steps': cfg.steps,
                'self_supervised': {'adapted_frames': {'before': state['stereo_before'], 'after': after},
                                    'held_out_frames': {'before': state['stereo_held_before'],
                                                        'after': adapter.probe(held_crops) if held_crops else {}}},
                'config': adapt.config_dict(cfg), 'device': f'cpu ({torch.get_num_threads()} threads)'}
    stereo_path = _export(stereo_card, stereo, out, stereo_card.name + args.suffix, training)
    report: dict[str, Any] = {'stereo': str(stereo_path), 'stereo_losses': training['self_supervised']}

    mono_path = None
    if args.mono and cfg.mono_steps:
        mono_card = load_card(find_card(args.mono))
        student = load_card_weights(mono_card)
        net_h, net_w = DepthEstimator(find_card(args.mono)).network_size(rec.left[0].shape[:2])
        m = student.multiple_of
        net_size = (max(m, round(net_h / m) * m), max(m, round(net_w / m) * m))
        teacher = {i: adapt.stereo_disparity(stereo, rec.left[i], rec.right[i]) for i in train}
        distiller = adapt.MonoDistiller(student, mono_card, rec, teacher, net_size, cfg)
        if 'mono_model' in state:
            student.load_state_dict(state['mono_model'])
            distiller.optimizer.load_state_dict(state['mono_optimizer'])
        if 'mono_before' not in state:
            state['mono_before'] = distiller.probe()
        models['mono'], optims['mono'] = student, distiller.optimizer
        adapt.run_steps('mono', distiller, cfg.mono_steps, state, save, Progress(cfg.mono_steps, stream, 'mono steps'))
        mono_training = {'adapted_from': mono_card.name, 'teacher': stereo_path.stem, 'recording': str(args.recording),
                         'frames': training['frames'], 'steps': cfg.mono_steps, 'input_size': list(net_size),
                         'self_supervised': {'distill_log_l1': {'before': state['mono_before'],
                                                                'after': distiller.probe()}},
                         'config': training['config'], 'device': training['device']}
        mono_path = _export(mono_card, student, out, mono_card.name + args.suffix, mono_training)
        report.update(mono=str(mono_path), mono_losses=mono_training['self_supervised'])

    if rec.has_ground_truth and held:
        before = adapt.ground_truth_scores(find_card(args.stereo), find_card(args.mono) if mono_path else None,
                                           rec, held)
        after_gt = adapt.ground_truth_scores(stereo_path, mono_path, rec, held)
        evaluation = {'frames': f'{held[0]}-{held[-1]} of {len(rec)} (never adapted on)', 'before': before,
                      'after': after_gt}
        from .evaluate import update_card
        for path in (stereo_path, mono_path):
            if path:
                update_card(str(path), 'adapt_eval', evaluation)
        report['ground_truth'] = evaluation
    report['elapsed_s'] = round(time.monotonic() - start, 1)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    import_training(PROG, 'torch')
    try:
        report = run(args)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f'{PROG}: {e}')
    except KeyboardInterrupt:
        from depth_ros.training.adapt import STATE
        sys.exit(f'{PROG}: interrupted; continue with --resume (state in {args.out / STATE})')
    print(json.dumps(report, indent=2))


if __name__ == '__main__':
    main()
