"""Console commands ``depth-ros-bag`` (a recording in, the same recording with depth out) and
``depth-ros-record`` (camera_source's synthetic stream, with ground truth and poses, as a bag)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from .bagio import STORAGES, BagError, BagWriter, open_reader, prepare_output
from .pairing import Cameras, DiscoveryError, discover, info_for, namespace_of

# option -> node parameter; None defaults leave the node's own default
NODE_OPTIONS = {'model': 'model', 'backend': 'backend', 'providers': 'providers', 'threads': 'threads',
                'stages': 'stages', 'input_scale': 'input_scale', 'decimation': 'decimation',
                'depth_format': 'depth_format', 'min_depth': 'min_depth', 'max_depth': 'max_depth',
                'points': 'publish_points', 'points_rgb': 'points_rgb'}
STEREO_INPUTS = ('left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info')
MONO_INPUTS = ('image', 'camera_info')


def bag_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='depth-ros-bag', description='Add the depth node outputs (depth/image, depth/camera_info, disparity, '
        'points, confidence) to a ROS 2 bag (MCAP or sqlite3): every frame, deterministic, the input messages '
        'copied unchanged. The camera topics are found by themselves (a rectified stereo pair under any '
        'namespace, else a single camera) or named with the topic options.')
    p.add_argument('input', type=Path, help='input bag (folder, or .mcap / .db3 file)')
    p.add_argument('output', type=Path, help='output bag folder (not overwritten without --force)')
    node = p.add_argument_group('node parameters (as the stereo / mono node; unset: the node default)')
    node.add_argument('--mono', action='store_true', help='run mono_depth_node on one camera (default: stereo '
                      'when the bag has a pair)')
    node.add_argument('--model', help="shipped model name, model card or .onnx, or 'opencv_sgbm' / 'opencv_bm'")
    node.add_argument('--backend', help="'auto', 'onnxruntime', 'torch' or 'opencv'")
    node.add_argument('--providers', help="ONNX Runtime providers, e.g. 'cpu' or 'cuda'")
    node.add_argument('--threads', type=int, help='inference threads (0: library default)')
    node.add_argument('--stages', type=int, help='anytime network stages (stereo; 0: all)')
    node.add_argument('--input-scale', type=float, help='resize factor before matching (stereo)')
    node.add_argument('--decimation', type=int, help='output resolution divisor')
    node.add_argument('--depth-format', choices=('32FC1', '16UC1'), help='depth/image encoding')
    node.add_argument('--min-depth', type=float, help='depths below (m) are invalid')
    node.add_argument('--max-depth', type=float, help='depths above (m) are invalid')
    node.add_argument('--points', action=argparse.BooleanOptionalAction, default=False,
                      help='write the organized point cloud on points (default: no; large)')
    node.add_argument('--points-rgb', action=argparse.BooleanOptionalAction, default=None,
                      help='colour the point cloud')
    node.add_argument('-p', '--param', action='append', default=[], metavar='NAME=VALUE',
                      help='any other node parameter (YAML value), e.g. -p sgbm.disparity_range=128')
    node.add_argument('--approximate-sync', action='store_true', help='pair left and right images whose stamps '
                      'differ by up to --slop (cameras that are not hardware-synchronized); default: equal stamps')
    node.add_argument('--slop', type=float, default=0.02, help='largest stamp difference (s) with --approximate-sync '
                      '(default 0.02, as the node)')
    topics = p.add_argument_group('topics (instead of discovery; camera_info defaults to the one next to the image)')
    for name in ('left-image', 'left-info', 'right-image', 'right-info', 'image', 'camera-info'):
        topics.add_argument(f'--{name}', metavar='TOPIC')
    topics.add_argument('--namespace', help="outputs' namespace (default: the camera's, e.g. /cam for "
                        '/cam/left/image_rect)')
    out = p.add_argument_group('output')
    out.add_argument('--storage', choices=tuple(STORAGES), default='mcap', help='output bag storage (default mcap)')
    out.add_argument('--force', action='store_true', help='overwrite an existing output bag')
    out.add_argument('-q', '--quiet', action='store_true', help='no progress line')
    out.add_argument('-v', '--verbose', action='store_true', help="the node's info log lines too")
    return p


def node_params(args: argparse.Namespace) -> dict[str, Any]:
    """Node parameter overrides from the options (only those given, plus publish_points)."""
    params = {param: getattr(args, opt) for opt, param in NODE_OPTIONS.items() if getattr(args, opt) is not None}
    for item in args.param:
        name, sep, value = item.partition('=')
        if not sep or not name:
            raise ValueError(f'-p expects NAME=VALUE, got {item!r}')
        params[name] = yaml.safe_load(value)
    for name in ('input_scale', 'min_depth', 'max_depth'):
        if name in params:
            params[name] = float(params[name])
    return params


def cameras_from(args: argparse.Namespace, types: dict[str, str]) -> Cameras:
    """The camera topics: named by the options, else discovered among ``types``."""
    if args.left_image or args.right_image:
        if not (args.left_image and args.right_image):
            raise DiscoveryError('--left-image and --right-image go together')
        images = (args.left_image, args.right_image)
        infos = (args.left_info or info_for(images[0]), args.right_info or info_for(images[1]))
    elif args.image:
        images, infos = (args.image,), (args.camera_info or info_for(args.image),)
    else:
        found = discover(types, mono=args.mono)
        images, infos = found.images, found.infos
    for topic in images + infos:
        if topic not in types:
            raise DiscoveryError(f'topic {topic} is not in the bag')
    return Cameras(images, infos, args.namespace or namespace_of(images))


def bag_main(argv: list[str] | None = None) -> int:
    """Entry point of ``depth-ros-bag``; returns the exit status (0: frames written, 1: none, 2: error)."""
    args = bag_parser().parse_args(argv)
    from .convert import convert
    from .offline import OfflineError, OfflineNode
    try:
        params = node_params(args)
        if not 0 <= args.slop <= 1:
            raise ValueError(f'--slop must be in [0, 1] s (as the node), got {args.slop}')
        reader = open_reader(args.input)
        types = {c.topic: c.msgtype for c in reader.connections}
        reader.close()
        cameras = cameras_from(args, types)
        output = prepare_output(args.output, args.force, (args.input,))
    except (BagError, DiscoveryError, ValueError) as e:
        print(f'depth-ros-bag: {e}', file=sys.stderr)
        return 2
    relative = MONO_INPUTS if cameras.mono else STEREO_INPUTS
    remaps = dict(zip(relative, cameras.images[:1] + cameras.infos[:1] + cameras.images[1:] + cameras.infos[1:]))
    try:
        node = OfflineNode(cameras.mono, cameras.namespace, params, remaps, 'info' if args.verbose else 'warn')
    except OfflineError as e:
        print(f'depth-ros-bag: cannot run the {"mono" if cameras.mono else "stereo"} node: {e}', file=sys.stderr)
        return 2
    writer = BagWriter(output, args.storage)
    try:
        summary = convert(args.input, writer, cameras, node, progress=None if args.quiet else sys.stderr,
                          slop=args.slop if args.approximate_sync else None)
    except BagError as e:
        print(f'depth-ros-bag: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'\ndepth-ros-bag: interrupted; {output} holds the messages written so far', file=sys.stderr)
        return 130
    finally:
        writer.close()
        node.close()
    print(summary.text(output, args.storage))
    return 0 if summary.frames_out else 1


def record_main(argv: list[str] | None = None) -> int:
    """Entry point of ``depth-ros-record``."""
    from .record import DEFAULT_START, record_synthetic
    p = argparse.ArgumentParser(prog='depth-ros-record', description="Write camera_source's synthetic stereo "
                                'stream (seeded: reproducible) with ground truth depth/disparity, the camera '
                                'poses and TF as a ROS 2 bag.')
    p.add_argument('output', type=Path, help='output bag folder')
    p.add_argument('--frames', type=int, default=30, help='frames along the camera path (default 30)')
    p.add_argument('--size', default='640x480', help='WIDTHxHEIGHT px (default 640x480)')
    p.add_argument('--rate', type=float, default=10.0, help='frames per second of the stamps (default 10)')
    p.add_argument('--seed', type=int, default=0, help='synthetic scene seed (default 0)')
    p.add_argument('--namespace', default='/camera', help='topic namespace (default /camera)')
    p.add_argument('--start', type=float, default=DEFAULT_START, help='stamp of the first frame (s)')
    p.add_argument('--storage', choices=tuple(STORAGES), default='mcap', help='bag storage (default mcap)')
    p.add_argument('--force', action='store_true', help='overwrite an existing bag')
    p.add_argument('--photos', action='store_true', help='photographs on the surfaces (depth-ros-render textures)')
    p.add_argument('--camera', type=int, metavar='SEED', help='pass both views through an imperfect camera pair '
                   '(blur, vignetting, exposure, noise, tone, JPEG) drawn with this seed')
    args = p.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split('x'))
        counts = record_synthetic(args.output, frames=args.frames, size=(width, height), rate=args.rate,
                                  seed=args.seed, namespace=args.namespace, storage=args.storage, force=args.force,
                                  start=args.start, photos=args.photos, camera=args.camera)
    except (BagError, ValueError) as e:
        print(f'depth-ros-record: {e}', file=sys.stderr)
        return 2
    print(f'wrote {args.output} ({args.storage}): ' + ', '.join(f'{n} {t}' for t, n in counts.items()))
    return 0


def main() -> None:
    """Console script ``depth-ros-bag``."""
    sys.exit(bag_main())


def record() -> None:
    """Console script ``depth-ros-record``."""
    sys.exit(record_main())
