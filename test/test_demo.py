"""depth-ros-demo end to end in a subprocess that cannot import torch, message_filters,
sensor_msgs_py or launch (as on a machine with only the PyPI packages): camera_source, the
stereo node (SGBM) and the mono node (a tiny untrained model exported here) in one process."""
import os
import re
import subprocess
import sys

import cv2
import pytest

from depth_ros.demo import shipped_models

BLOCKED = ('torch', 'message_filters', 'sensor_msgs_py', 'launch', 'launch_ros')


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    """Environment whose Python cannot import the BLOCKED packages."""
    root = tmp_path_factory.mktemp('blocked')
    for name in BLOCKED:
        (root / name).mkdir()
        (root / name / '__init__.py').write_text(f'raise ImportError("{name} is blocked: the demo must not need it")\n')
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get('PYTHONPATH', '')]),
                OMP_NUM_THREADS='1')


def demo(env, *args, timeout=120):
    return subprocess.run([sys.executable, '-m', 'depth_ros.demo', *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def table_row(stdout: str, label: str) -> list[str]:
    row = next(line for line in stdout.splitlines() if line.startswith(f'| {label}'))
    return [c.strip() for c in row.strip('|').split('|')]


def test_demo_runs_stereo_and_mono_and_writes_the_picture(env, tmp_path):
    from depth_ros.nets.export import export_model

    card = export_model('fastdepth', tmp_path, name='fastdepth_tiny', input_size=(64, 96))
    out = tmp_path / 'demo.png'
    r = demo(env, '--seconds', '3', '--width', '320', '--height', '240', '--rate', '10',
             '--mono-model', str(card), '--out', str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r'input rate (\d+\.\d) Hz', r.stdout) and float(re.search(r'input rate (\d+\.\d)', r.stdout)[1]) > 5
    stereo = table_row(r.stdout, 'stereo: opencv_sgbm')
    mono = table_row(r.stdout, 'mono: fastdepth_tiny (untrained, for tests)')
    assert stereo[1] == 'opencv_sgbm (opencv)' and '**untrained, for tests**' in mono[1]
    assert 'onnxruntime' in mono[1]
    for row in (stereo, mono):
        assert float(row[2]) > 2                                    # output rate (Hz)
        median, p90 = (float(v) for v in row[3].split('/'))         # depth latency (ms)
        assert 0 < median <= p90 < 2000
        assert float(row[4].split('/')[0]) > 0                     # cloud latency
    absrel, rmse, delta1, bad3 = float(stereo[5]), float(stereo[6]), float(stereo[7].rstrip('%')), stereo[8]
    assert absrel < 0.15 and rmse < 3 and delta1 > 80               # SGBM on a textured scene
    assert float(bad3.rstrip('%')) < 20 and mono[8] == 'n/a'        # bad-3 only for disparity
    assert float(mono[5]) > 0                                       # untrained: computed, not good
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 400 and image.shape[1] == 4 * 320  # left, truth, stereo, mono
    assert (image.max(axis=2) > 40).mean() > 0.3                    # mostly drawn, not blank


def test_demo_fails_clearly_without_output_or_with_a_bad_model(env, tmp_path):
    r = demo(env, '--stereo-model', 'no_such_model', '--out', str(tmp_path / 'x.png'))
    assert r.returncode != 0 and "cannot load a model" in r.stderr and 'no_such_model' in r.stderr
    assert 'Traceback' not in r.stderr
    r = demo(env, '--rate', '-1')
    assert r.returncode == 2 and '--rate must be in (0, 500] Hz' in r.stderr
    # 0.2 s is shorter than the depth node's first subscription check: nothing can arrive
    r = demo(env, '--seconds', '0.2', '--width', '64', '--height', '48', '--out', str(tmp_path / 'y.png'))
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'stereo_depth_node published no depth' in r.stderr
    if not shipped_models('mono'):
        assert 'mono_depth_node: SKIPPED' in r.stdout
