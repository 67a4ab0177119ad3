"""Model benchmark: parameters, GMACs and CPU latency of every registered network, next to the
OpenCV stereo baselines and Depth Anything V2 Small.

    python bench/models.py [--quick] [--models fastdepth,anynet,opencv,dav2] [--out bench.md]

- networks: exported untrained to ONNX (dynamic H/W) in a temporary folder and timed through
  depth_ros.inference (StereoEstimator / DepthEstimator: resize/pad, ONNX Runtime CPU, crop,
  NaN masking), mono at 224x224, 320x240 and 640x480, AnyNet per stage count at 640x480;
- OpenCV StereoSGBM (3-way, 128 disparities, colour and grey) and StereoBM (128) at 640x480,
  through the same StereoEstimator;
- Depth Anything V2 Small: transformers' DepthAnythingForDepthEstimation with the Small
  configuration, random weights (nothing downloaded), exported to ONNX and timed as a bare ONNX
  Runtime session at 518x518 (needs ``pip install transformers``; skipped without it).
Latency: median of >= 20 runs after warm-up (``--quick``: 3), with 1 and 2 intra-op threads.
GMACs: torch.utils.flop_counter (convolutions and matrix products; elementwise ops not
counted) at the size the network runs at (inputs padded to its multiple). Needs torch.
"""
from __future__ import annotations

import argparse
import fnmatch
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from depth_ros.inference import DepthEstimator, StereoEstimator
from depth_ros.nets import create_model, list_models, model_kind
from depth_ros.nets.export import export_model

MONO_SIZES = [(224, 224), (240, 320), (480, 640)]  # (H, W)
STEREO_SIZE = (480, 640)
QUICK_MONO_SIZES, QUICK_STEREO_SIZE = [(224, 224)], (240, 320)
DAV2_SIZE = 518
THREADS = (1, 2)
EXTRA = ('opencv', 'dav2')  # --models names that are not registered networks


@dataclass
class Row:
    """One table line: latencies in ms per thread count."""
    name: str
    kind: str
    size: str
    params: int | None = None
    gmacs: float | None = None
    ms: dict[int, float] = field(default_factory=dict)


def median_ms(fn: Callable[[], object], runs: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in ms over ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def gmacs(model: torch.nn.Module, *inputs: torch.Tensor) -> float:
    """Multiply-accumulates (1e9) of one forward pass."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() / 2e9


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def textured_pair(h: int, w: int, shift: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random RGB texture (uint8) and the same shifted left by ``shift`` px."""
    rng = np.random.default_rng(seed)
    wide = cv2.GaussianBlur(rng.integers(0, 256, (h, w + shift, 3), dtype=np.uint8), (5, 5), 0)
    return wide[:, shift:].copy(), wide[:, :w].copy()


def size_text(size: tuple[int, int], net: tuple[int, int] | None = None) -> str:
    text = f'{size[1]}x{size[0]}'
    return text if net is None or tuple(net) == tuple(size) else f'{text} (net {net[1]}x{net[0]})'


def bench_mono(arch: str, tmp: Path, sizes: list[tuple[int, int]], runs: int, warmup: int) -> list[Row]:
    model = create_model(arch).eval()
    card = export_model(arch, tmp, input_size=tuple(-(-n // model.multiple_of) * model.multiple_of for n in sizes[0]))
    rows = []
    for size in sizes:
        image = textured_pair(*size)[0]
        row = None
        for threads in THREADS:
            est = DepthEstimator(card, threads=threads, input_size=size)
            net = est.size_map(size).padded_size
            row = row or Row(arch, 'mono', size_text(size, net), n_params(model), gmacs(model, torch.rand(1, 3, *net)))
            row.ms[threads] = median_ms(lambda: est(image), runs, warmup)
        rows.append(row)
    return rows


def bench_stereo(arch: str, tmp: Path, size: tuple[int, int], runs: int, warmup: int) -> list[Row]:
    model = create_model(arch).eval()
    card = export_model(arch, tmp, input_size=size)
    left, right = textured_pair(*size)
    x = torch.rand(1, 3, *size)
    rows = []
    for stages in range(1, model.max_stages + 1):
        model.stages = stages
        row = Row(f'{arch} ({stages} stage{"s" if stages > 1 else ""})', 'stereo', size_text(size), n_params(model),
                  gmacs(model, x, x))
        for threads in THREADS:
            est = StereoEstimator(card, stages=stages, threads=threads)
            row.ms[threads] = median_ms(lambda: est(left, right), runs, warmup)
        rows.append(row)
    return rows


def bench_opencv(size: tuple[int, int], runs: int, warmup: int) -> list[Row]:
    left, right = textured_pair(*size)
    grey = cv2.cvtColor(left, cv2.COLOR_RGB2GRAY), cv2.cvtColor(right, cv2.COLOR_RGB2GRAY)
    cases = [('opencv_sgbm', 'StereoSGBM 3-way, 128 disp, colour', (left, right)),
             ('opencv_sgbm', 'StereoSGBM 3-way, 128 disp, grey', grey),
             ('opencv_bm', 'StereoBM, 128 disp', grey)]
    rows = []
    for method, name, pair in cases:
        row = Row(name, 'stereo', size_text(size))
        for threads in THREADS:
            est = StereoEstimator(method, threads=threads, sgbm={'disparity_range': 128, 'sgbm_mode': 'sgbm_3way'})
            row.ms[threads] = median_ms(lambda: est(*pair), runs, warmup)
        rows.append(row)
    cv2.setNumThreads(-1)
    return rows


def bench_dav2(tmp: Path, runs: int, warmup: int) -> list[Row]:
    """Depth Anything V2 Small (random init) as a bare ONNX Runtime session at 518x518."""
    try:
        from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    except ImportError:
        print('transformers is not installed: Depth Anything V2 Small skipped (pip install transformers)')
        return []
    import onnxruntime as ort

    backbone = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4, patch_size=14,
                            image_size=DAV2_SIZE, out_indices=[9, 10, 11, 12], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, patch_size=14, reassemble_hidden_size=384,
                                 reassemble_factors=[4, 2, 1, 0.5], neck_hidden_sizes=[48, 96, 192, 384],
                                 fusion_hidden_size=64, head_hidden_size=32, depth_estimation_type='relative')
    model = DepthAnythingForDepthEstimation(config).eval()

    class Depth(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.net(pixel_values=image).predicted_depth

    wrapped = Depth(model).eval()
    x = torch.rand(1, 3, DAV2_SIZE, DAV2_SIZE)
    path = tmp / 'dav2_small.onnx'
    torch.onnx.export(wrapped, (x,), str(path), dynamo=False, opset_version=17, input_names=['image'],
                      output_names=['depth'])
    row = Row('Depth Anything V2 Small (random init)', 'mono', size_text((DAV2_SIZE, DAV2_SIZE)), n_params(model),
              gmacs(wrapped, x))
    feed = {'image': x.numpy()}
    for threads in THREADS:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
        row.ms[threads] = median_ms(lambda: session.run(None, feed), runs, warmup)
    return [row]


def table(rows: list[Row]) -> str:
    heads = ' | '.join(f'{t} thread{"s" * (t > 1)} (ms)' for t in THREADS)
    lines = [f'| model | kind | params | GMACs | input | {heads} |', '|---|---|---:|---:|---|' + '---:|' * len(THREADS)]
    for r in rows:
        params = f'{r.params:,}' if r.params is not None else '-'
        macs = f'{r.gmacs:.3f}' if r.gmacs is not None else '-'
        lines.append(f'| {r.name} | {r.kind} | {params} | {macs} | {r.size} | '
                     + ' | '.join(f'{r.ms[t]:.1f}' for t in THREADS) + ' |')
    return '\n'.join(lines)


def ratios(rows: list[Row]) -> str:
    """The project's speed targets, per thread count."""
    by_name = {r.name: r for r in rows}
    lines = []

    def line(what: str, num: Row | None, den: Row | None, target: str, ok: Callable[[float], bool],
             invert: bool = False) -> None:
        if num is None or den is None:
            return
        values = {t: (den.ms[t] / num.ms[t] if invert else num.ms[t] / den.ms[t]) for t in THREADS}
        text = ', '.join(f'{t} thread{"s" * (t > 1)}: {v:.2f}{"x" if invert else ""} '
                         f'({"meets" if ok(v) else "MISSES"} {target})' for t, v in values.items())
        lines.append(f'- {what}: {text}')

    students = [r for r in rows if r.kind == 'mono' and r.size.startswith('224x224') and r.name != 'teacher']
    fastest = min(students, key=lambda r: r.ms[1], default=None)
    dav2 = next((r for r in rows if r.name.startswith('Depth Anything')), None)
    if fastest is not None:
        line(f'speed-up of the fastest student at 224x224 ({fastest.name}) over DA-V2 Small at 518x518', fastest, dav2,
             'target >= 100x', lambda v: v >= 100, invert=True)
    stage = {k: by_name.get(f'anynet ({k} stage{"s" if k > 1 else ""})') for k in range(1, 5)}
    bm = by_name.get('StereoBM, 128 disp')
    sgbm, sgbm_grey = by_name.get('StereoSGBM 3-way, 128 disp, colour'), by_name.get('StereoSGBM 3-way, 128 disp, grey')
    # the targets at 640x480: stage 1 faster than BM, stages 1-3 at most half of SGBM, SPN faster than SGBM
    # (the stereo node's opencv_sgbm matches colour images; stereo_image_proc matches grey ones)
    line('AnyNet stage 1 / StereoBM', stage[1], bm, 'target < 1', lambda v: v < 1)
    for name, ref in (('colour', sgbm), ('grey', sgbm_grey)):
        line(f'AnyNet stages 1-3 / SGBM {name}', stage[3], ref, 'target <= 0.5', lambda v: v <= 0.5)
        line(f'AnyNet 4 stages (SPN) / SGBM {name}', stage[4], ref, 'target < 1', lambda v: v < 1)
    return '\n'.join(lines)


def selected(patterns: list[str], names: list[str]) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='3 runs, mono at 224x224 only, stereo at 320x240')
    parser.add_argument('--models', default='*', help='comma-separated names or globs of registered networks, '
                        'plus "opencv" and "dav2" (default: everything)')
    parser.add_argument('--out', type=Path, help='also write the markdown report to this file')
    args = parser.parse_args(argv)
    warnings.filterwarnings('ignore')  # exporter chatter
    logging.getLogger('depth_ros').setLevel(logging.ERROR)  # every exported net is untrained
    patterns = [p.strip() for p in args.models.split(',') if p.strip()]
    runs, warmup = (3, 1) if args.quick else (20, 3)
    mono_sizes, stereo_size = (QUICK_MONO_SIZES, QUICK_STEREO_SIZE) if args.quick else (MONO_SIZES, STEREO_SIZE)
    torch.set_num_threads(1)

    rows: list[Row] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for arch in selected(patterns, list_models()):
            print(f'benchmarking {arch} ...', file=sys.stderr, flush=True)
            if model_kind(arch) == 'mono':
                rows += bench_mono(arch, Path(tmp), mono_sizes, runs, warmup)
            else:
                rows += bench_stereo(arch, Path(tmp), stereo_size, runs, warmup)
        if selected(patterns, ['opencv']):
            rows += bench_opencv(stereo_size, runs, warmup)
        if selected(patterns, ['dav2']):
            print('benchmarking Depth Anything V2 Small ...', file=sys.stderr, flush=True)
            rows += bench_dav2(Path(tmp), runs, warmup)
    if not rows:
        parser.error(f'--models {args.models!r} selects nothing; registered: {", ".join(list_models())}, '
                     f'and {", ".join(EXTRA)}')
    title = (f'Model benchmark ({"quick, " if args.quick else ""}median of {runs} runs after {warmup} warm-up, '
             'ONNX Runtime CPU, untrained weights)')
    report = (f'## {title}\n\n{table(rows)}\n\n### Targets\n\n{ratios(rows) or "- (none)"}\n\n'
              f'({time.perf_counter() - start:.0f} s)\n')
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == '__main__':
    main()
