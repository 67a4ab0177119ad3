"""Real-camera check (OpenCV's stereo calibration sample): calibration, exact board disparity, scoring.

The sample comes from Debian's opencv-doc (.ci/run installs it). In CI a missing sample fails
the tests; elsewhere they are skipped.
"""
import os

import numpy as np
import pytest

from depth_ros.inference import StereoEstimator
from depth_ros.synthetic import warp_right_to_left
from depth_ros.training import realcheck, realcheck_report

PAIRS = ['left01', 'left05']


@pytest.fixture(scope='module')
def check():
    try:
        return realcheck.load_check(names=PAIRS)
    except FileNotFoundError as e:
        if os.environ.get('CI'):
            pytest.fail(f'real-camera check data missing in CI: {e}')
        pytest.skip(str(e))


def test_rig_is_calibrated_and_rectified(check):
    rig, samples = check
    assert [s['name'] for s in samples] == PAIRS
    assert rig.rms < 0.8 and 400 < rig.fx < 700 and 2.5 < rig.baseline < 4.5
    for s in samples:
        assert s['dy'] < 0.5              # rows agree after rectification
        assert s['fit_rms'] < 0.6         # the corners lie on a plane in disparity space
        board = s['board']
        assert 0.1 < board.mean() < 0.9
        assert np.isfinite(s['disparity'][board]).all() and np.isnan(s['disparity'][~board]).all()
        assert 90 < np.nanmin(s['disparity']) and np.nanmax(s['disparity']) < 220


def test_board_disparity_explains_the_real_images(check):
    """Warping the real right image by the ground truth matches the left image on the board better
    than the ground truth moved by half a pixel or more (the two cameras' exposures differ, so the
    error is not zero)."""
    _, samples = check
    offsets = (-1.0, -0.5, 0.0, 0.5, 1.0, 3.0)
    for s in samples:
        errors = []
        for offset in offsets:
            warped, inside = warp_right_to_left(s['right'][..., 0].astype(np.float32), s['disparity'] + offset)
            errors.append(np.abs(warped - s['left'][..., 0])[s['board'] & inside].mean())
        assert int(np.argmin(errors)) == offsets.index(0.0) and errors[-1] > 1.5 * errors[2], errors


def test_scores_sgbm_and_a_trivial_matcher(check):
    _, samples = check
    sgbm, preds = realcheck.score_stereo(StereoEstimator('opencv_sgbm', sgbm={'disparity_range': 256}), samples[:1])
    assert preds[0].shape == samples[0]['disparity'].shape
    assert 0.2 < sgbm['density'] <= 1.0 and sgbm['bad3'] < 0.8 and sgbm['photo_l1'] < 0.1

    class Constant:                       # disparity 50 px everywhere: wrong on the whole board
        def __call__(self, left, right):
            return np.full(left.shape[:2], 50.0, np.float32)

    const, _ = realcheck.score_stereo(Constant(), samples[:1])
    assert const['bad3'] == 1.0 and const['density'] == 1.0 and const['photo_l1'] > sgbm['photo_l1']


def test_full_check_reports_every_shipped_model(check):
    rig, samples = check
    result = realcheck.run_check(samples[:1], fusion=True)
    assert {'opencv_sgbm', 'opencv_bm', 'anynet_spn8 s4', 'anynet_spn8 s4 @0.5', 'anynet_spn8 s4 + sgbm'} <= set(
        result['stereo'])
    for metrics in result['stereo'].values():
        assert 0.0 <= metrics['bad3'] <= metrics['bad1'] <= 1.0
    for metrics in result['mono'].values():
        assert 0.0 < metrics['const_absrel'] < 0.5 and 0.0 < metrics['rows_ssi_absrel'] < 0.5
    entries = realcheck_report.card_entries(result, samples[:1], rig)
    networks = {c.split(' ')[0] for c in result['stereo'] if not c.startswith('opencv')}
    assert set(entries) == networks | set(result['mono'])
    assert entries['anynet_spn8']['metrics'] == result['stereo']['anynet_spn8 s4']
    assert set(entries['anynet_spn8']['stages']) == {'1', '2', '3', '4'}
    assert '| opencv_sgbm |' in realcheck_report.markdown(result, 1)


def test_synthetic_boards_are_exact_planes_and_scored_like_the_real_board():
    """Rendered boards (no opencv-doc needed): every board pixel lies on one plane (inverse depth is
    affine in the pixel coordinates), the board covers at least a tenth of the view, and the mono
    protocol scores a perfect prediction 0 and a constant map like the real board's baseline."""
    samples = realcheck.synthetic_boards(3, seed=1, size=(120, 160), textures=None)
    assert len(samples) == 3
    for s in samples:
        board = s['board']
        assert board.mean() >= 0.05 and np.array_equal(board, np.isfinite(s['depth']))
        ys, xs = np.nonzero(board)
        design = np.c_[xs, ys, np.ones(len(xs))]
        fit, *_ = np.linalg.lstsq(design, s['disparity'][board], rcond=None)
        assert np.abs(design @ fit - s['disparity'][board]).max() < 1e-3 * s['disparity'][board].max()

    class Oracle:    # the ground truth, found by the image it is handed
        def __call__(self, image, fx):
            s = next(s for s in samples if s['left'] is image)
            return np.where(s['board'], s['depth'], 5.0).astype(np.float32)

    scores, _ = realcheck.score_mono(Oracle(), samples)
    assert scores['absrel_median'] < 1e-6 and scores['ssi_absrel'] < 1e-5
    assert 0.0 < scores['const_absrel'] < 0.5 and 0.0 < scores['rows_ssi_absrel'] < 0.5
    assert abs(scores['slant_cos'] - 1.0) < 1e-6 and abs(scores['slant_gain'] - 1.0) < 1e-4


def test_slant_tells_a_flat_board_from_a_mirrored_one():
    """A board 2 m away leaning back along y (depth +0.5 % per row): a flattened copy keeps the
    direction at a fifth of the size, a mirrored one points the other way, a constant map has none."""
    ys, xs = np.mgrid[0:60, 0:80].astype(np.float64)
    board = (xs > 10) & (xs < 70) & (ys > 5) & (ys < 55)
    gt = 2.0 * (1.0 + 0.005 * (ys - 30) + 0.001 * (xs - 40))
    flat = 2.0 + 0.2 * (gt - 2.0)
    mirrored = 4.0 - gt
    assert realcheck.slant(flat, gt, board) == pytest.approx({'slant_cos': 1.0, 'slant_gain': 0.2}, rel=1e-6)
    assert realcheck.slant(mirrored, gt, board)['slant_cos'] == pytest.approx(-1.0, abs=1e-6)
    assert np.isnan(realcheck.slant(np.full_like(gt, 3.0), gt, board)['slant_cos'])
    assert np.isnan(realcheck.plane_slope(gt, np.zeros_like(board))).all()


def test_cli_scores_a_training_checkpoint_against_the_default(check, tmp_path):
    """``--mono`` scores the named models alone (a trainer checkpoint beside the shipped default): no
    stereo rows, the JSON keyed by what was asked, the rendered boards too, the figure written."""
    import json

    import torch

    from depth_ros.nets import create_model
    from depth_ros.model_card import DEFAULT_MONO
    from depth_ros.nets.checkpoint import card_info, save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / 'run.pt', create_model('mbv2_fbnet').eval(), 'mbv2_fbnet', {},
                           card_info(True, {'input_size': [96, 128]}, {}, 90.0))
    out = tmp_path / 'scores.json'
    realcheck.main(['--pairs', 'left01', '--mono', str(ckpt), DEFAULT_MONO, '--synthetic-boards', '1',
                    '--out', str(out), '--figure', str(tmp_path / 'fig.jpg')])
    scores = json.loads(out.read_text())
    assert scores['stereo'] == {} and list(scores['mono']) == [str(ckpt), DEFAULT_MONO]
    assert list(scores['synthetic_boards']) == [str(ckpt), DEFAULT_MONO]
    for metrics in scores['mono'].values():
        assert metrics['density'] == 1.0 and 0.0 < metrics['absrel_median'] < 2.0
    assert (tmp_path / 'fig.jpg').stat().st_size > 0
