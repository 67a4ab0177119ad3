"""depth-ros-adapt on a tiny synthetic recording that looks unlike the training renders (photos,
an imperfect camera): the self-supervised losses fall, the adapted cards load in the runtime and
carry their provenance, and a resumed run continues where it stopped."""
from __future__ import annotations

import json

import pytest

pytest.importorskip('torch')

from depth_ros.inference import DepthEstimator, StereoEstimator  # noqa: E402
from depth_ros.model_card import DEFAULT_STEREO, load_card  # noqa: E402
from depth_ros.recordings.frames import load_stereo_recording  # noqa: E402
from depth_ros.recordings.record import record_synthetic  # noqa: E402
from depth_ros.training.cli import adapt  # noqa: E402

pytestmark = pytest.mark.usefixtures('torch_one_thread')


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('adapt') / 'bag'
    record_synthetic(path, frames=8, size=(256, 192), seed=5, photos=True, camera=3)
    return path


def test_recording_frames_and_ground_truth(bag):
    rec = load_stereo_recording(bag)
    assert len(rec) == 8 and rec.has_ground_truth and rec.left[0].shape == (192, 256, 3)
    assert rec.fx == pytest.approx(500 * 256 / 640) and rec.baseline == pytest.approx(0.12)
    assert rec.split(0.75) == (list(range(6)), [6, 7])


def test_adapt_lowers_the_self_supervised_losses_and_writes_loadable_cards(bag, tmp_path, capsys):
    out = tmp_path / 'models'
    argv = [str(bag), '--out', str(out), '--share', '0.75', '--crop', '128', '192', '--quiet']
    adapt.main(argv + ['--steps', '3', '--mono-steps', '3'])
    first = json.loads(capsys.readouterr().out)
    adapt.main(argv + ['--steps', '6', '--mono-steps', '10', '--resume'])  # 3 more stereo steps, 7 more mono
    report = json.loads(capsys.readouterr().out)
    state = __import__('torch').load(out / 'adapt_state.pt', weights_only=True)
    assert (state['stereo_step'], state['mono_step']) == (6, 10)
    assert len(state['stereo_history']) == 6 and len(state['mono_history']) == 10
    ss = report['stereo_losses']['adapted_frames']
    assert ss['before'] == first['stereo_losses']['adapted_frames']['before']  # kept across the resume
    assert ss['after']['photometric'] < ss['before']['photometric']
    assert ss['after']['loss'] < ss['before']['loss']
    distill = report['mono_losses']['distill_log_l1']
    assert distill['after']['distill'] < 0.8 * distill['before']['distill']

    card = load_card(report['stereo'])
    assert card.training['adapted_from'] == DEFAULT_STEREO and card.training['steps'] == 6
    assert card.training['recording'] == str(bag) and card.torch_weights
    assert set(card.metrics['adapt_eval']) == {'frames', 'before', 'after'}
    mono = load_card(report['mono'])
    assert mono.training['adapted_from'] == 'mbv2_fbnet' and mono.f_canonical == 90.0
    rec = load_stereo_recording(bag)
    disparity = StereoEstimator(report['stereo'])(rec.left[7], rec.right[7])
    depth = DepthEstimator(report['mono'])(rec.left[7], fx=rec.fx)
    assert disparity.shape == depth.shape == (192, 256)
    gt = report['ground_truth']
    assert gt['after']['bad3'] < gt['before']['bad3'] + 0.05  # no collapse on frames never adapted on
