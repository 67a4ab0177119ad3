"""Smoke test of bench/models.py --quick (a few networks and the OpenCV baselines)."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / 'bench' / 'models.py'


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location('bench_models', BENCH)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_writes_a_table_and_the_targets(bench, tmp_path, capsys):
    out = tmp_path / 'bench.md'
    bench.main(['--quick', '--models', 'fastdepth,anynet,opencv', '--out', str(out)])
    report = out.read_text()
    assert report in capsys.readouterr().out
    rows = {line.split(' | ')[0][2:]: line.split(' | ') for line in report.splitlines() if line.startswith('| ')}
    expected = ['fastdepth', 'anynet (1 stage)', 'anynet (4 stages)', 'StereoSGBM 3-way, 128 disp, colour',
                'StereoSGBM 3-way, 128 disp, grey', 'StereoBM, 128 disp']
    for name in expected:
        assert name in rows
        assert all(float(v.strip(' |')) > 0 for v in rows[name][-2:])  # 1- and 2-thread latencies
    assert rows['fastdepth'][2] == '3,960,929' and rows['fastdepth'][4] == '224x224'
    assert 0.6 < float(rows['fastdepth'][3]) < 0.9  # FastDepth: 0.74 GMACs at 224x224
    assert rows['anynet (4 stages)'][2] == '43,269'
    for line in (r'AnyNet stage 1 / StereoBM: 1 thread: [\d.]+ \((meets|MISSES) target < 1\)',
                 r'AnyNet stages 1-3 / SGBM colour: 1 thread: [\d.]+ \((meets|MISSES) target <= 0.5\)',
                 r'AnyNet 4 stages \(SPN\) / SGBM grey: 1 thread: [\d.]+ \((meets|MISSES) target < 1\)'):
        assert re.search(line, report), line
    assert 'Depth Anything' not in report


def test_selecting_nothing_is_an_error(bench):
    with pytest.raises(SystemExit):
        bench.main(['--quick', '--models', 'no_such_net'])
