"""depth-ros-train -> depth-ros-export -> depth-ros-evaluate -> depth-ros-compare, all tiny, on CPU."""
from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from depth_ros.inference import DepthEstimator, StereoEstimator
from depth_ros.metrics import depth_metrics, stereo_metrics
from depth_ros.model_card import load_card
from depth_ros.training.cli import adapt, compare, evaluate, export, render, train
from depth_ros.training.config import list_recipes
from depth_ros.training.data import READERS, open_reader
from depth_ros.training.data.rendered import render_dataset
from depth_ros.training.evaluation import synthetic_samples
from depth_ros.training.stream_setup import parse_source

QUIET = ['--set', 'log.progress=false', '--set', 'log.tensorboard=false']
STEREO = ['--recipe', 'anynet_synthetic', '--set', 'model.options={max_disparity: 32, spn_channels: 0}',
          '--set', 'data.height=64', '--set', 'data.width=128', '--set', 'data.batch_size=2',
          '--set', 'data.max_disparity=32', '--set', 'loss.terms.stages.max_disparity=32',
          '--set', 'data.val_batches=1', '--set', 'data.val_batch_size=2', *QUIET]
TINY_AUTOENCODER = ['--set', 'model.options={levels: 3, filters: [8, 16, 32, 64]}', '--set', 'data.batch_size=2',
                    '--set', 'data.resize_to=[64, 64]', '--set', 'data.workers=0', '--set', 'data.val_batches=1',
                    '--set', 'data.val_batch_size=1', *QUIET]
# Runs a console script's installed entry point in a Python where torch is not installed.
NO_TORCH = """
import sys
from importlib.metadata import entry_points

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'torch':
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)

sys.meta_path.insert(0, NoTorch())
sys.argv = sys.argv[1:]
(script,) = entry_points(group='console_scripts', name=sys.argv[0])
sys.exit(script.load()())
"""

pytestmark = pytest.mark.usefixtures('torch_one_thread')


def last_json(text: str) -> dict:
    """The last line of stdout that is a JSON object."""
    return json.loads([line for line in text.splitlines() if line.startswith('{')][-1])


def test_console_scripts_are_installed():
    out = subprocess.run(['depth-ros-train', '--list'], capture_output=True, text=True, check=True).stdout.split()
    assert 'anynet_synthetic' in out and 'mbv2_fbnet_synthetic_kd' in out
    for command in ('depth-ros-evaluate', 'depth-ros-compare', 'depth-ros-render', 'depth-ros-export',
                    'depth-ros-adapt'):
        assert 'usage' in subprocess.run([command, '--help'], capture_output=True, text=True, check=True).stdout


def without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', NO_TORCH, *args], capture_output=True, text=True, timeout=120)


def test_help_works_without_torch_and_a_run_says_what_to_install(tmp_path):
    runs = {'depth-ros-train': ['--recipe', 'anynet_synthetic'], 'depth-ros-export': ['--arch', 'fastdepth'],
            'depth-ros-evaluate': ['--model', 'opencv_sgbm'], 'depth-ros-render': ['mono', str(tmp_path)],
            'depth-ros-compare': ['--models', 'opencv_sgbm', '--out', str(tmp_path)],
            'depth-ros-adapt': [str(tmp_path / 'recording')]}
    for command, args in runs.items():
        r = without_torch(command, '--help')
        assert r.returncode == 0 and r.stdout.startswith(f'usage: {command}') and not r.stderr, r.stderr
        r = without_torch(command, *args)
        assert (r.returncode, r.stderr) == (1, f"{command}: needs torch, part of the training extra: "
                                                "pip install -e '.[train]'\n"), r.stderr
    assert 'anynet_synthetic' in without_torch('depth-ros-train', '--list').stdout  # recipes need no torch


def test_help_examples_parse_and_name_real_recipes_and_readers():
    for cli in (train, export, evaluate, compare, render, adapt):
        parser = cli.build_parser()
        assert all(action.help for action in parser._actions), parser.prog  # every option says what it does
        examples = [shlex.split(line, comments=True) for line in parser.epilog.splitlines()
                    if line.strip().startswith(parser.prog)]
        assert examples, parser.prog
        for words in examples:
            args = parser.parse_args(words[1:])
            if getattr(args, 'data', None):
                parse_source(args.data)
            if getattr(args, 'recipe', None):
                assert args.recipe in list_recipes(), words
    text = evaluate.build_parser().format_help()
    assert all(name in text for name in READERS)


def test_unknown_readers_and_missing_data_are_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match=r"^depth-ros-evaluate: unknown reader 'kitti2015' in 'kitti2015:/x'; "
                                         r'readers: diode, diw, kitti_depth, kitti_stereo, '):
        evaluate.main(['--model', 'opencv_sgbm', '--data', 'kitti2015:/x'])
    with pytest.raises(SystemExit, match=r"^depth-ros-compare: unknown reader 'nyu2'"):
        compare.main(['--models', 'opencv_sgbm', '--data', 'nyu2:/x', '--out', str(tmp_path)])
    with pytest.raises(SystemExit, match=rf'^depth-ros-evaluate: --data kitti_stereo:{tmp_path}: .* is not a dir'):
        evaluate.main(['--model', 'opencv_sgbm', '--data', f'kitti_stereo:{tmp_path}'])
    stereo = render_dataset(tmp_path / 'pairs', 'stereo', 8, (32, 64), workers=1)
    with pytest.raises(SystemExit, match=r'^depth-ros-evaluate: --data rendered:.*: rendered holds stereo pairs, '
                                         r'not mono images'):
        evaluate.main(['--model', 'fastdepth', '--data', f'rendered:{stereo}', '--split', 'all'])
    with pytest.raises(SystemExit, match=r'^depth-ros-evaluate: --update-card stores the network alone'):
        evaluate.main(['--model', 'anynet_spn8', '--fusion', 'sgbm', '--update-card'])
    with pytest.raises(SystemExit, match=r"^depth-ros-train: unknown reader 'kitti'"):
        train.main(['--recipe', 'anynet_synthetic', '--set', 'data.source=kitti:/x'])
    with pytest.raises(SystemExit, match=r"^depth-ros-export: unknown model 'nosuch'; known: anynet, "):
        export.main(['--arch', 'nosuch'])


def test_stereo_train_resume_export_evaluate_compare(tmp_path, capsys):
    run, models = tmp_path / 'run', tmp_path / 'models'
    args = [*STEREO, '--out', str(run), '--set', 'schedule.max_steps=4', '--set', 'log.eval_every=4']
    train.main([*args, '--max-minutes', '1e-5'])  # out of time after the first step: stops with a checkpoint
    first = last_json(capsys.readouterr().out)
    assert (first['step'], first['finished'], first['out_of_time']) == (1, False, True)
    assert torch.load(run / 'last.pt', weights_only=True)['step'] == 1
    train.main([*args, '--resume'])
    done = last_json(capsys.readouterr().out)
    assert (done['step'], done['finished']) == (4, True) and (run / 'samples.png').is_file()

    export.main(['--checkpoint', str(run / 'last.pt'), '--out', str(models), '--name', 'tiny',
                 '--input-size', '64', '128'])
    card_path = models / 'tiny.json'
    card = load_card(card_path)
    assert card.trained and card.training['steps'] == 4 and card.stages == [1, 2, 3]
    assert card.training['device'] == 'cpu (1 threads)'
    capsys.readouterr()

    evaluate.main(['--model', str(card_path), '--data', 'synthetic', '--n', '2', '--out', str(tmp_path / 'm.json'),
                   '--update-card'])
    report = json.loads((tmp_path / 'm.json').read_text())
    assert report['kind'] == 'stereo' and report['n'] == 2 and report['size'] == [64, 128]
    assert set(report['stages']) == {'1', '2', '3'} and report['stages']['3'] == report['metrics']
    samples = synthetic_samples('stereo', 2, (64, 128), max_disparity=32)  # the same held-out pairs
    estimator = StereoEstimator(str(card_path))
    epe = np.mean([stereo_metrics(estimator(s['left'], s['right']), s['disparity'])['epe'] for s in samples])
    assert report['metrics']['epe'] == pytest.approx(epe, rel=1e-6)
    sgbm = report['opencv_sgbm']
    assert sgbm['density'] > 0.5 and sgbm['bad3_pred'] < 0.3  # SGBM is mostly right where it answers ...
    assert sgbm['bad3'] > sgbm['bad3_pred'] + 0.5 * (1 - sgbm['density'])  # ... and its holes count as bad
    updated = load_card(card_path)
    assert updated.metrics['synthetic/val']['metrics']['epe'] == pytest.approx(epe, rel=1e-6)
    assert updated.graph_path(3).is_file() and updated.graphs == card.graphs  # checksums untouched
    assert updated.metrics['synthetic/val']['opencv_sgbm'] == sgbm  # the reference sits beside it
    # on the pixels SGBM answers, the network's density is SGBM's share of ground truth pixels
    common = report['on_sgbm_pixels']
    assert common['density'] == pytest.approx(1.0) and common['epe'] != report['metrics']['epe']

    capsys.readouterr()
    evaluate.main(['--model', str(card_path), '--data', 'synthetic', '--n', '2', '--input-scale', '0.5',
                   '--label', 'held_out', '--no-sgbm', '--update-card'])
    half = json.loads(capsys.readouterr().out)
    assert half['input_scale'] == 0.5 and half['data'] == 'held_out'
    pair = samples[0]
    expected = StereoEstimator(str(card_path), input_scale=0.5)(pair['left'], pair['right'])
    assert half['metrics']['epe'] != report['metrics']['epe'] and np.isfinite(expected).mean() > 0.5
    assert load_card(card_path).metrics['held_out/val@0.5']['input_scale'] == 0.5

    compare.main(['--models', str(card_path), 'opencv_sgbm', str(run / 'last.pt'), '--data', 'synthetic', '--n', '2',
                  '--out', str(tmp_path / 'cmp')])
    table = (tmp_path / 'cmp' / 'comparison.md').read_text()
    assert all(f'| {name} |' in table for name in ('tiny', 'opencv_sgbm', 'last'))
    models_out = json.loads((tmp_path / 'cmp' / 'comparison.json').read_text())['models']
    # ONNX Runtime (exported graph) and the torch backend (checkpoint) give the same numbers
    assert models_out['tiny']['metrics']['epe'] == pytest.approx(models_out['last']['metrics']['epe'], abs=1e-3)
    figure = cv2.imread(str(tmp_path / 'cmp' / 'comparison.png'))
    assert figure is not None and figure.shape[0] > 300 and figure.shape[1] >= 5 * 256


def write_diode(root, n=3, size=(96, 128)):
    """A DIODE-format folder: <name>.png, <name>_depth.npy (H, W, 1) m, <name>_depth_mask.npy."""
    rng = np.random.default_rng(0)
    for i in range(n):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        depth = np.linspace(1.0, 5.0, size[1], dtype=np.float32)[None].repeat(size[0], 0) + i
        cv2.imwrite(str(root / f'scan_{i}.png'), image)
        np.save(root / f'scan_{i}_depth.npy', depth[..., None])
        np.save(root / f'scan_{i}_depth_mask.npy', (depth > 1.5).astype(np.float32))


def test_mono_dataset_reader_train_export_evaluate(tmp_path, capsys):
    data, run = tmp_path / 'diode', tmp_path / 'run'
    data.mkdir()
    write_diode(data)
    train.main(['--recipe', 'autoencoder_diode', *TINY_AUTOENCODER, '--set', f'data.source=diode:{data}',
                '--set', 'data.f_canonical=50', '--set', 'schedule.max_steps=2', '--out', str(run)])
    assert last_json(capsys.readouterr().out)['finished']
    val = list(csv.DictReader(open(run / 'val.csv')))
    assert len(val) == 1 and float(val[0]['absrel']) > 0
    export.main(['--checkpoint', str(run / 'last.pt'), '--out', str(tmp_path), '--name', 'ae',
                 '--input-size', '64', '64'])
    assert load_card(tmp_path / 'ae.json').f_canonical == 50.0
    evaluate.main(['--model', str(tmp_path / 'ae.json'), '--data', f'diode:{data}', '--split', 'all', '--n', '3',
                   '--out', str(tmp_path / 'm.json')])
    report = json.loads((tmp_path / 'm.json').read_text())
    estimator = DepthEstimator(str(tmp_path / 'ae.json'))
    absrel = np.mean([depth_metrics(estimator(s['image'], fx=s['fx']), s['depth'])['absrel']
                      for s in open_reader('diode', str(data))])
    assert report['n'] == 3 and report['metrics']['absrel'] == pytest.approx(absrel, rel=1e-6)
    aligned = np.mean([depth_metrics(estimator(s['image'], fx=s['fx']), s['depth'], align_mode='median')['absrel']
                       for s in open_reader('diode', str(data))])
    assert report['metrics']['absrel_median_aligned'] == pytest.approx(aligned, rel=1e-6)


def test_relative_depth_pairs_train_and_whdr(tmp_path, capsys):
    rng = np.random.default_rng(1)
    rows = []
    for i in range(4):
        cv2.imwrite(str(tmp_path / f'im{i}.png'), rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
        rows += [[f'im{i}.png'], [10, 20, 50, 70, '<' if i % 2 else '>', 80, 60], [5, 5, 40, 30, '=', 80, 60]]
    with open(tmp_path / 'diw.csv', 'w', newline='') as f:
        csv.writer(f).writerows(rows)
    run = tmp_path / 'run'
    train.main(['--recipe', 'autoencoder_diode', *TINY_AUTOENCODER, '--set', f'data.source=diw:{tmp_path / "diw.csv"}',
                '--set', 'loss.terms={rank: {name: ranking}}', '--set', 'data.pairs=4', '--set', 'log.best_metric=whdr',
                '--set', 'schedule.max_steps=3', '--out', str(run)])
    assert last_json(capsys.readouterr().out)['best']['metric'] == 'whdr'
    val = list(csv.DictReader(open(run / 'val.csv')))
    assert 0.0 <= float(val[-1]['whdr']) <= 1.0 and 'absrel' not in val[-1]
    history = list(csv.DictReader(open(run / 'train.csv')))
    assert all(np.isfinite(float(r['rank'])) for r in history)
    evaluate.main(['--model', str(run / 'last.pt'), '--data', f'diw:{tmp_path / "diw.csv"}', '--split', 'all',
                   '--out', str(tmp_path / 'm.json')])
    report = json.loads((tmp_path / 'm.json').read_text())
    assert report['n'] == 4 and 0.0 <= report['metrics']['whdr'] <= 1.0


def test_find_lr_command(tmp_path, capsys):
    train.main([*STEREO, '--find-lr', '--lr-steps', '6', '--out', str(tmp_path)])
    result = last_json(capsys.readouterr().out)
    assert result['tried'] == 6 and 1e-7 <= result['suggested_lr'] <= 10
    assert (tmp_path / 'lr_finder.png').is_file() and len((tmp_path / 'lr_finder.csv').read_text().splitlines()) == 7
