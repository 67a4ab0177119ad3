"""depth-ros-demo end to end in a subprocess that cannot import torch, message_filters,
sensor_msgs_py or launch (as on a machine with only the PyPI packages): camera_source, two stereo
nodes (SGBM and BM, compared on the same frames) and the mono node (a tiny untrained model
exported here) in one process; exit codes; a node without output flagged in its row (in
process, with a real ROS run); the picture's layout."""
import argparse
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.context import Context

from depth_ros import demo, viz
from depth_ros.nodes.base import FrameError
from depth_ros.nodes.diagnostics import ERROR
from depth_ros.nodes.mono import MonoDepthNode

BLOCKED = ('torch', 'message_filters', 'sensor_msgs_py', 'launch', 'launch_ros')
CELL_W, CELL_H, LABEL_H, TITLE_H = 320, 240, 22, 28  # viz.tile's default layout


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    """Environment whose Python cannot import the BLOCKED packages."""
    root = tmp_path_factory.mktemp('blocked')
    for name in BLOCKED:
        (root / name).mkdir()
        (root / name / '__init__.py').write_text(f'raise ImportError("{name} is blocked: the demo must not need it")\n')
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get('PYTHONPATH', '')]),
                OMP_NUM_THREADS='1')


@pytest.fixture(scope='module')
def mono_card(tmp_path_factory):
    """A tiny untrained mono model (64x96 input)."""
    from depth_ros.nets.export import export_model

    return export_model('fastdepth', tmp_path_factory.mktemp('mono'), name='fastdepth_tiny', input_size=(64, 96))


def demo_process(env, *args, timeout=120):
    return subprocess.run([sys.executable, '-m', 'depth_ros.demo', '--threads', '1', *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def run_in_process(*argv: str) -> tuple[int, argparse.Namespace]:
    """demo.run in this process (its own ROS context, one inference thread per node); returns
    (exit status, the options)."""
    args = demo.parse_args(['--threads', '1', *argv])
    context = Context()
    rclpy.init(context=context)
    try:
        return demo.run(args, context), args
    finally:
        rclpy.try_shutdown(context=context)


def table_row(stdout: str, label: str) -> list[str]:
    row = next(line for line in stdout.splitlines() if line.startswith(f'| {label} |'))
    return [c.strip() for c in row.strip('|').split('|')]


def assert_answered(row: list[str], stdout: str) -> None:
    """The row's node published depth: a rate (Hz), 'n/a' from a single frame; a row flagged
    '(only n)' comes with the demo's note saying why. Speed is bench/'s to measure (README), not
    the tests': a CI run on a loaded machine got 3 frames in 3 s."""
    hz, _, only = row[2].partition(' (only ')
    assert float(hz) > 0 if hz != 'n/a' else only == '1)', row
    assert not only or re.search(rf'^{re.escape(row[0])}: only {only.rstrip(")")} depth image\(s\) in [\d.]+ s - ',
                                 stdout, re.M), stdout


def test_demo_compares_stereo_models_and_mono_and_writes_the_picture(env, mono_card, tmp_path):
    out = tmp_path / 'demo.png'
    r = demo_process(env, '--seconds', '3', '--width', '320', '--height', '240', '--rate', '10',
                     '--stereo-models', 'opencv_sgbm,opencv_bm', '--mono-model', str(mono_card), '--out', str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert float(re.search(r'input rate (\d+\.\d) Hz', r.stdout)[1]) > 5
    assert 'running stereo_depth_node_opencv_sgbm, stereo_depth_node_opencv_bm, mono_depth_node' in r.stdout
    sgbm, bm = table_row(r.stdout, 'stereo: opencv_sgbm'), table_row(r.stdout, 'stereo: opencv_bm')
    mono = table_row(r.stdout, 'mono: fastdepth_tiny (untrained, for tests)')
    assert sgbm[1] == 'opencv_sgbm (opencv)' and bm[1] == 'opencv_bm (opencv)'
    assert '**untrained, for tests**' in mono[1] and 'onnxruntime' in mono[1]
    for row in (sgbm, bm, mono):
        assert_answered(row, r.stdout)
        median, p90 = (float(v) for v in row[3].split('/'))         # depth latency (ms)
        assert 0 < median <= p90 < 2000
        assert float(row[4].split('/')[0]) > 0                     # cloud latency
        assert 20 <= float(row[9].rstrip('%')) <= 100              # valid share
    absrel, rmse, delta1, bad3 = float(sgbm[5]), float(sgbm[6]), float(sgbm[7].rstrip('%')), float(sgbm[8].rstrip('%'))
    assert absrel < 0.15 and rmse < 3 and delta1 > 80 and bad3 < 20  # SGBM on a textured scene
    assert float(bm[5]) < 0.3 and float(bm[8].rstrip('%')) < 40       # BM: coarser, still depth
    assert float(bm[9].rstrip('%')) < float(sgbm[9].rstrip('%'))       # and sparser than SGBM
    assert float(mono[5]) > 0 and mono[8] == 'n/a'                  # untrained: computed, not good; no bad-3
    for label in ('stereo: opencv_sgbm', 'stereo: opencv_bm'):
        assert re.search(rf'^{label}: frames in \d+, out \d+, dropped \d+', r.stdout, re.M)
    # picture: [left image | ground truth | sgbm | bm | mono] over [colour bar | their clouds], each cell drawn
    image = cv2.imread(str(out))
    assert image is not None and image.shape[:2] == (TITLE_H + 2 * (LABEL_H + CELL_H), 5 * CELL_W)
    for row in range(2):
        for col in range(5):
            y0, x0 = TITLE_H + row * (LABEL_H + CELL_H) + LABEL_H, col * CELL_W
            cell = image[y0 + 2:y0 + CELL_H - 2, x0 + 2:x0 + CELL_W - 2]
            assert (cell.max(axis=2) > 40).mean() > (0.01 if row else 0.3), (row, col)


def test_demo_exit_codes_and_the_stereo_model_alias(env, tmp_path):
    r = demo_process(env, '--stereo-models', 'opencv_sgbm,no_such_model', '--out', str(tmp_path / 'x.png'))
    assert r.returncode == 2 and 'cannot load a model' in r.stderr and 'no_such_model' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr
    r = demo_process(env, '--rate', '-1')
    assert r.returncode == 2 and '--rate must be in (0, 500] Hz' in r.stderr
    r = demo_process(env, '--stereo-models', 'opencv_sgbm,,opencv_bm')
    assert r.returncode == 2 and '--stereo-models must be a comma-separated list' in r.stderr
    # 0.2 s is shorter than the depth node's first subscription check: nothing can arrive (exit 1)
    r = demo_process(env, '--stereo-model', 'opencv_bm', '--seconds', '0.2', '--width', '64', '--height', '48',
                     '--out', str(tmp_path / 'y.png'))
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'ERROR: stereo_depth_node_opencv_bm published no depth' in r.stderr
    assert '| stereo: opencv_bm | opencv_bm (opencv) | NO OUTPUT |' in r.stdout
    r = demo_process(env, '--stereo-models', 'opencv_sgbm,opencv_sgbm', '--seconds', '0.2', '--width', '64',
                     '--height', '48', '--out', str(tmp_path / 'y.png'))
    assert r.returncode == 1 and 'stereo_depth_node_opencv_sgbm, stereo_depth_node_opencv_sgbm_2' in r.stdout
    if not demo.shipped_models('mono'):
        assert 'mono_depth_node: SKIPPED' in r.stdout


def test_a_node_without_output_is_flagged_in_its_row_and_the_demo_succeeds(mono_card, tmp_path, monkeypatch,
                                                                            capsys):
    def reject(self, frame):
        raise FrameError('estimator', 'test: every frame rejected', ERROR)

    monkeypatch.setattr(MonoDepthNode, 'process', reject)
    status, _ = run_in_process('--seconds', '2', '--width', '160', '--height', '120', '--stereo-models', 'opencv_sgbm',
                               '--mono-model', str(mono_card), '--out', str(tmp_path / 'z.png'))
    captured = capsys.readouterr()
    assert status == 0, captured.out + captured.err
    sgbm = table_row(captured.out, 'stereo: opencv_sgbm')
    assert_answered(sgbm, captured.out)
    assert float(sgbm[5]) < 0.15
    mono = table_row(captured.out, 'mono: fastdepth_tiny (untrained, for tests)')
    assert mono[2] == 'NO OUTPUT' and mono[3:] == ['n/a'] * 7
    assert re.search(r'^mono: fastdepth_tiny \(untrained, for tests\): NO depth image in 2\.\d s - last problem: '
                     r'test: every frame rejected', captured.out, re.M)
    assert 'WARNING: mono_depth_node published no depth' in captured.err
    image = cv2.imread(str(tmp_path / 'z.png'))   # sgbm's depth and cloud; 'no depth' panels for mono
    assert image is not None and image.shape[1] == 4 * CELL_W


def test_picture_columns_wrap_evenly_and_every_block_starts_with_the_reference():
    assert [viz.column_layout(n, 3) for n in (1, 3, 4, 5, 7)] == [(1, 1), (1, 3), (2, 2), (2, 3), (3, 3)]
    red, blue = np.zeros((30, 40, 3), np.uint8), np.zeros((30, 40, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    reference = [('truth', blue), ('truth below', red)]
    columns = [reference] + [[(f'c{i}', red), (f'c{i} below', blue)] for i in range(2)] + [[('short', red)]]
    fig = viz.column_figure(columns, max_columns=3, lead=1, cell=(80, 60))
    assert fig.shape == (4 * (22 + 60), 3 * 80, 3)             # 3 columns after the reference, 2 per block

    def colour(row, col):                                       # mean RGB inside a cell
        return fig[row * 82 + 32:row * 82 + 72, col * 80 + 10:col * 80 + 70].reshape(-1, 3).mean(axis=0)

    assert colour(0, 0)[2] > 200 and colour(2, 0)[2] > 200      # the reference starts both blocks
    assert colour(0, 1)[0] > 200 and colour(1, 2)[2] > 200      # block 1: c0, c1 above their blue panels
    assert colour(2, 1)[0] > 200                                # block 2: 'short' ...
    assert colour(3, 1).max() < 40 and colour(2, 2).max() < 40  # ... with empty cells below and beside it
    with pytest.raises(ValueError, match='lead'):
        viz.column_figure([reference, reference], max_columns=2, lead=2)
    assert viz.text_panel('no depth for this frame', (160, 120)).max() > 0


def test_default_stereo_models_are_the_trained_shipped_ones_then_sgbm(tmp_path, monkeypatch):
    import json

    for name, kind, trained, training in (('net_a', 'stereo', True, {}), ('net_b', 'stereo', False, {}),
                                          ('anynet_lite', 'stereo', True, {}),  # the node's default: first
                                          ('net_c', 'stereo', True, {'derived': 'net_a without SPN'}),
                                          ('mono_a', 'mono', True, {})):
        (tmp_path / f'{name}.json').write_text(json.dumps({
            'name': name, 'arch': 'anynet', 'kind': kind, 'trained': trained, 'input': {'size': [64, 96]},
            'training': training,
            'graphs': [{'stages': 1, 'file': f'{name}.onnx'}],
            'output': {'quantity': 'disparity' if kind == 'stereo' else 'depth'}}))
    monkeypatch.setenv('DEPTH_ROS_MODELS', str(tmp_path))
    models = demo.parse_args([]).stereo_models
    assert models[0].endswith('/anynet_lite.json') and str(tmp_path / 'net_a.json') in models
    assert models[-1] == 'opencv_sgbm'
    assert not any(name in m for m in models for name in ('net_b', 'net_c', 'mono_a', '/anynet.json'))
    assert demo.parse_args(['--stereo-model', 'opencv_bm']).stereo_models == ['opencv_bm']
    assert demo.parse_args(['--stereo-models', 'opencv_bm, opencv_sgbm']).stereo_models == ['opencv_bm', 'opencv_sgbm']


def test_frames_stops_early_and_reports_truthfully(mono_card, tmp_path, capsys):
    """--frames 3 stops once every node published 3 depth images: no node is flagged short and
    the report names the time actually run, not the 120 s cap."""
    status, args = run_in_process('--frames', '3', '--width', '160', '--height', '120', '--stereo-models', 'opencv_bm',
                                  '--mono-model', str(mono_card), '--out', str(tmp_path / 'f.png'))
    out = capsys.readouterr().out
    assert status == 0 and args.elapsed < 60, out
    assert 'up to 120 s (until every node published 3 depth images)' in out
    assert not re.search(r'only \d|too slow|NO depth|NO OUTPUT', out), out
    assert float(table_row(out, 'stereo: opencv_bm')[2]) > 0


def test_help_shows_real_defaults_only(capsys):
    with pytest.raises(SystemExit):
        demo.parse_args(['--help'])
    text = capsys.readouterr().out
    assert 'default: None' not in text and '(default: 640)' in text


def test_the_demo_does_not_import_the_training_side():
    code = ('import sys, depth_ros.demo\n'
            'assert not [m for m in sys.modules if m.startswith("depth_ros.training")], "training imported"\n')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=60)
