"""Trainer, recipes, schedules, checkpoints and the LR finder on tiny CPU runs."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from depth_ros.nets import create_model
from depth_ros.nets.checkpoint import read_checkpoint, save_checkpoint, save_state
from depth_ros.training.rng import rng_state, set_rng_state
from depth_ros.training.config import (ConfigError, ScheduleConfig, TrainConfig, apply_overrides, list_recipes,
                                       load_recipe)
from depth_ros.training.losses import build_loss
from depth_ros.training.lr_finder import find_lr, suggest_lr
from depth_ros.training.optim import lr_at, total_steps
from depth_ros.training.tasks import load_teacher, sample_depth_pairs
from depth_ros.training.trainer import Trainer, amp_dtype

QUIET = ['log.progress=false', 'log.tensorboard=false']


pytestmark = pytest.mark.usefixtures('torch_one_thread')


def tiny_stereo(out, *extra: str) -> TrainConfig:
    """AnyNet without SPN, 32 px disparities, 64x128 synthetic pairs."""
    return apply_overrides(load_recipe('anynet_synthetic'), [
        'model.options={max_disparity: 32, spn_channels: 0}', 'data.height=64', 'data.width=128',
        'data.batch_size=4', 'data.max_disparity=32', 'loss.terms.stages.max_disparity=32', 'optim.lr=3e-3',
        'data.val_batches=2', 'log.log_every=1', 'log.plots=false', f'log.out={out}', *QUIET, *extra])


def tiny_kd(out, teacher, *extra: str) -> TrainConfig:
    """The seed 004 KD recipe (aux heads, kd_pixel + ranking + kd_pairwise, rebalancing) at 64x64."""
    return apply_overrides(load_recipe('mbv2_fbnet_synthetic_kd'), [
        f'loss.teacher={teacher}', 'data.height=64', 'data.width=64', 'data.batch_size=2', 'data.epoch_size=10',
        'data.f_canonical=48', 'data.pairs=16', 'loss.terms.kd_pairwise.grid=[4, 4]', 'data.val_batches=1',
        'data.val_batch_size=2', 'log.log_every=1', 'log.eval_every=1000', 'log.plots=false', f'log.out={out}',
        *QUIET, *extra])


# ---------------------------------------------------------------------------------------- config
@pytest.mark.parametrize('name', list_recipes())
def test_recipes_load_and_build_their_losses(name):
    cfg = load_recipe(name)
    assert cfg.name == name and cfg.notes
    for spec in cfg.loss.terms.values():
        spec = {k: v for k, v in spec.items() if k != 'weight'}
        build_loss(spec)  # unknown loss names or parameters raise
    assert total_steps(cfg.schedule, 100) > 0


def test_required_recipes_exist_with_the_seed_settings():
    names = set(list_recipes())
    assert {'anynet_synthetic', 'anynet_sceneflow', 'fastdepth_synthetic', 'fastdepth_nyu', 'lightdepth_nyu',
            'yolo_unet_nyu', 'autoencoder_diode', 'teacher_synthetic', 'mbv2_fbnet_synthetic',
            'mbv2_fbnet_synthetic_kd', 'mbv2_fbnet_diw_kd'} <= names
    anynet = load_recipe('anynet_synthetic')
    assert (anynet.optim.name, anynet.optim.lr, anynet.data.batch_size) == ('adam', 5e-4, 6)
    assert (anynet.data.height, anynet.data.width, anynet.data.max_disparity) == (256, 512, 192)
    assert anynet.loss.terms['stages']['weights'] == [0.25, 0.5, 1.0, 1.0]
    fast = load_recipe('fastdepth_nyu')
    assert (fast.optim.name, fast.optim.lr, fast.schedule.gamma, fast.schedule.step_epochs) == ('sgd', 0.08, 0.9, 10)
    assert fast.loss.terms['main'] == {'name': 'fastdepth', 'lam': 12.0}
    yolo = load_recipe('yolo_unet_nyu')
    assert (yolo.optim.lr, yolo.data.batch_size, yolo.loss.terms['main']['w_l1']) == (1e-4, 32, 0.1)
    assert yolo.data.augment['hflip'] > 0 and yolo.data.augment['channel_permutation'] > 0
    kd = load_recipe('mbv2_fbnet_synthetic_kd')
    assert kd.loss.rebalance == 'hard_to_easy' and kd.loss.teacher
    assert kd.loss.terms['kd_pixel']['head_weights'] == [0.5, 0.25, 0.25]
    assert kd.model.arch == 'mbv2_fbnet' and kd.data.f_canonical > 0  # inherited from the base recipe
    assert load_recipe('mbv2_fbnet_diw_kd').data.source.startswith('diw:')


def test_overrides():
    cfg = load_recipe('anynet_synthetic')
    out = apply_overrides(cfg, ['optim.lr=1e-3', 'batch_size=3', 'model.options.spn_channels=0',
                                ('schedule.milestones', [1, 2])])
    assert (out.optim.lr, out.data.batch_size, out.schedule.milestones) == (1e-3, 3, [1, 2])
    assert out.model.options == {'max_disparity': 192, 'spn_channels': 0}
    assert cfg.optim.lr == 5e-4  # the original is untouched
    for bad in ('optim.nope=1', 'nope=1', 'optim.lr=fast', 'weight=2'):
        with pytest.raises(ConfigError):
            apply_overrides(cfg, [bad])


def test_schedules():
    step = ScheduleConfig(name='step', step_epochs=10, gamma=0.9)
    assert lr_at(0, 0.08, step, 100) == pytest.approx(0.08)
    assert lr_at(999, 0.08, step, 100) == pytest.approx(0.08)
    assert lr_at(1000, 0.08, step, 100) == pytest.approx(0.072)
    assert lr_at(2500, 0.08, step, 100) == pytest.approx(0.08 * 0.81)
    multi = ScheduleConfig(name='multistep', milestones=[2, 3], gamma=0.1)
    assert [lr_at(s, 1.0, multi, 10) for s in (19, 20, 30)] == pytest.approx([1.0, 0.1, 0.01])
    cos = ScheduleConfig(name='cosine', max_steps=110, warmup_steps=10, min_lr=0.1)
    assert lr_at(0, 1.0, cos, 5) == pytest.approx(0.1) and lr_at(9, 1.0, cos, 5) == pytest.approx(1.0)
    assert lr_at(60, 1.0, cos, 5) == pytest.approx(0.55) and lr_at(110, 1.0, cos, 5) == pytest.approx(0.1)
    assert amp_dtype('auto', torch.device('cpu')) is None and amp_dtype('bf16', torch.device('cpu')) is None


def test_depth_pairs_follow_the_depth_order():
    depth = torch.linspace(1, 8, 64).reshape(1, 1, 8, 8).repeat(2, 1, 1, 1)
    depth[1, :, :, :4] = float('nan')  # no ground truth on the left half of image 1
    pairs = sample_depth_pairs(depth, None, 200, 0.02, torch.Generator().manual_seed(0))
    assert pairs.shape == (2, 200, 5)
    rows = ((pairs[..., [0, 2]] * 8).floor()).long()
    cols = ((pairs[..., [1, 3]] * 8).floor()).long()
    z = torch.stack([depth[b, 0][rows[b, :, k], cols[b, :, k]] for b in range(2) for k in range(2)]).reshape(2, 2, -1)
    assert torch.isfinite(z).all()  # only valid pixels are drawn
    closer = z[:, 0] < z[:, 1] / 1.02
    farther = z[:, 0] > z[:, 1] * 1.02
    r = pairs[..., 4]
    assert torch.equal(r == 1, closer) and torch.equal(r == -1, farther) and (r == 0).any()


# ---------------------------------------------------------------------------------------- training
def test_stereo_loss_falls(tmp_path):
    trainer = Trainer(tiny_stereo(tmp_path, 'schedule.max_steps=60', 'log.eval_every=1000', 'log.ckpt_every=1000'))
    before = trainer.validate()['epe']
    summary = trainer.run()
    trainer.close()
    losses = [h['loss'] for _, h in trainer.history]
    assert summary['finished'] and summary['step'] == 60 and len(losses) == 60
    assert np.mean(losses[-20:]) < 0.9 * np.mean(losses[:20])  # every batch is new: compare 20-step means
    assert summary['metrics']['epe'] < 0.9 * before  # on the fixed held-out batches
    assert {'epe_s1', 'epe_s2', 'epe_s3', 'bad1', 'bad3', 'd1'} <= set(summary['metrics'])
    ckpt = torch.load(tmp_path / 'last.pt', weights_only=True)  # plain data only
    assert ckpt['step'] == 60 and ckpt['arch'] == 'anynet' and ckpt['card']['trained']
    assert ckpt['card']['metrics']['validation']['epe'] == pytest.approx(summary['metrics']['epe'])
    assert (tmp_path / 'best.pt').is_file() and (tmp_path / 'train.csv').read_text().count('\n') == 61


def test_kd_resume_is_exact_and_a_kill_loses_at_most_one_interval(tmp_path):
    torch.manual_seed(0)
    teacher = save_checkpoint(tmp_path / 'teacher.pt', create_model('teacher', encoder_depth=18, decoder_width=0.125),
                              'teacher', {'encoder_depth': 18, 'decoder_width': 0.125}, card={'f_canonical': 96.0})
    run = tmp_path / 'run'
    cfg = tiny_kd(run, teacher, 'schedule.max_steps=10', 'log.ckpt_every=3')
    first = Trainer(cfg)
    first.run(steps=7, save_on_exit=False)  # dies after step 7: last.pt is from step 6
    first.close()
    assert first.rebalancer.weights != {k: 1 / 3 for k in first.task.terms}  # rebalancing took place
    assert first.task.teacher_scale == pytest.approx(48 / 96)

    resumed = Trainer(cfg, resume=True)
    assert resumed.step == 6 and 7 - resumed.step <= cfg.log.ckpt_every
    resumed.run(steps=1)
    resumed.close()
    for key in ('loss', 'kd_pixel', 'ranking', 'kd_pairwise'):
        assert resumed.history[-1][1][key] == pytest.approx(first.history[6][1][key], rel=1e-5, abs=1e-7)
    assert resumed.rebalancer.weights == pytest.approx(first.rebalancer.weights, rel=1e-6)
    rows = (run / 'train.csv').read_text().strip().splitlines()
    assert [int(r.split(',')[0]) for r in rows[1:]] == list(range(1, 8))  # no duplicated step 7


def test_resume_continues_the_schedule(tmp_path):
    cfg = tiny_stereo(tmp_path, 'schedule.max_steps=6', 'schedule.name=cosine', 'log.eval_every=1000',
                      'log.ckpt_every=2')
    full = Trainer(cfg)
    full.run()
    full.close()
    lrs_full = [float(r.split(',')[2]) for r in (tmp_path / 'train.csv').read_text().splitlines()[1:]]
    shutil.rmtree(tmp_path)
    part = Trainer(cfg)
    part.run(steps=4)
    part.close()
    rest = Trainer(cfg, resume=True)
    summary = rest.run()
    rest.close()
    lrs = [float(r.split(',')[2]) for r in (tmp_path / 'train.csv').read_text().splitlines()[1:]]
    assert summary['step'] == 6 and lrs == pytest.approx(lrs_full, rel=1e-4)
    assert rest.history[-1][1]['loss'] == pytest.approx(full.history[-1][1]['loss'], rel=1e-5)


def test_lr_finder_restores_the_model(tmp_path):
    trainer = Trainer(tiny_stereo(tmp_path))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = find_lr(trainer, 1e-5, 1e3, steps=12, plot_path=tmp_path / 'lr.png')
    trainer.close()
    assert 3 < len(result.lrs) <= 12 and len(result.losses) == len(result.smoothed) == len(result.lrs)
    assert np.allclose(np.diff(np.log(result.lrs)), np.log(1e8) / 11)
    assert result.lrs[0] <= result.suggested_lr <= result.lrs[-1] and result.plot.is_file()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_lr_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = list(np.logspace(-6, 1, 71))
    x = np.log10(lrs)
    loss = 2.0 - np.tanh(2.0 * (x + 2.0)) + np.where(x > -0.5, 30.0 * (x + 0.5) ** 2, 0.0)  # steepest at 1e-2
    assert suggest_lr(lrs, list(loss)) == pytest.approx(1e-2, rel=0.13)


def test_checkpoint_rng_state_round_trip(tmp_path):
    state = rng_state()
    save_state({'rng': state, 'arch': 'x', 'model': {}}, tmp_path / 'a.pt')
    draws = (np.random.rand(), torch.rand(1).item())
    set_rng_state(read_checkpoint(tmp_path / 'a.pt')['rng'])
    assert (np.random.rand(), torch.rand(1).item()) == draws
    assert not (tmp_path / 'a.pt.tmp').exists() and math.isfinite(draws[0])


def test_freeze_bn_keeps_batchnorm_statistics_while_the_weights_train(tmp_path):
    """model.freeze_bn: fine-tuning weights whose BatchNorm was folded into the convolutions
    (recovered from ONNX) must not renormalize with batch statistics; the convs still learn."""
    trainer = Trainer(tiny_stereo(tmp_path, 'model.freeze_bn=true', 'schedule.max_steps=3', 'log.eval_every=1000',
                                  'log.ckpt_every=1000'))
    bns = [m for m in trainer.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    stats = [m.running_mean.clone() for m in bns]
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items() if k.endswith('weight')}
    trainer.run(save_on_exit=False)
    assert bns and not any(m.training for m in bns)
    assert all(torch.equal(m.running_mean, s) for m, s in zip(bns, stats))
    assert any(not torch.equal(trainer.model.state_dict()[k], v) for k, v in weights.items())


def test_trainable_prefixes_train_only_those_parameters_and_freeze_the_rest(tmp_path):
    """model.trainable: fine-tune one part (e.g. AnyNet's SPN) on frozen earlier stages, whose
    weights, BatchNorm statistics and train/eval mode stay as loaded; unknown prefixes raise."""
    trainer = Trainer(tiny_stereo(tmp_path, 'model.trainable=[nets3d]', 'schedule.max_steps=3', 'log.eval_every=1000',
                                  'log.ckpt_every=1000'))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run(save_on_exit=False)
    after = trainer.model.state_dict()
    frozen = [k for k in before if k.startswith('features.')]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # running stats included
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith('nets3d.'))
    assert not any(m.training for m in trainer.model.features.modules())
    with pytest.raises(ValueError, match='names no parameter'):
        Trainer(tiny_stereo(tmp_path / 'x', 'model.trainable=[spn]'))


def test_init_narrowed_starts_a_cheaper_anynet_from_a_wider_checkpoint(tmp_path):
    """model.init_narrowed: a checkpoint of the full network starts a narrower, shallower one (its
    features load as they are); without the flag the shapes do not fit."""
    wide = Trainer(tiny_stereo(tmp_path / 'wide', 'schedule.max_steps=1', 'log.eval_every=1000'))
    wide.run()
    narrow = ['model.options={max_disparity: 32, spn_channels: 0, growth_rate: [2, 1, 1], layers_3d: 2}',
              f'model.init={tmp_path / "wide" / "last.pt"}', 'schedule.max_steps=2', 'log.eval_every=1000']
    trainer = Trainer(tiny_stereo(tmp_path / 'narrow', *narrow, 'model.init_narrowed=true'))
    assert all(torch.equal(v, wide.model.state_dict()[k]) for k, v in trainer.model.state_dict().items()
               if k.startswith('features.'))
    assert trainer.model.nets3d[0][1][2].weight.shape == (8, 8, 3, 3, 3)
    trainer.run(save_on_exit=False)
    with pytest.raises(RuntimeError, match='size mismatch'):
        Trainer(tiny_stereo(tmp_path / 'strict', *narrow))


def test_kd_stages_distils_every_stage_of_a_stereo_teacher(tmp_path):
    """loss.teacher + a kd_stages term: the student's stages learn the frozen teacher's (here
    with no ground-truth term at all); a shipped model's name is a teacher too."""
    Trainer(tiny_stereo(tmp_path / 'teacher', 'schedule.max_steps=1', 'log.eval_every=1000')).run()
    kd = ['loss.terms={kd: {name: kd_stages, max_disparity: 32}}', f'loss.teacher={tmp_path / "teacher" / "last.pt"}',
          'schedule.max_steps=40', 'log.eval_every=1000', 'log.ckpt_every=1000']
    trainer = Trainer(tiny_stereo(tmp_path / 'student', *kd))
    teacher = trainer.task.teacher
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    trainer.run(save_on_exit=False)
    values = [h['kd'] for _, h in trainer.history]
    assert len(values) == 40 and all(math.isfinite(v) for v in values)
    assert np.mean(values[-10:]) < 0.8 * np.mean(values[:10])
    with pytest.raises(ValueError, match='need loss.teacher'):
        Trainer(tiny_stereo(tmp_path / 'none', *kd[:1]))
    shipped = load_teacher('anynet_spn8', 0.0, torch.device('cpu'))[0]
    pair = torch.rand(2, 1, 3, 64, 128).unbind(0)
    assert len(shipped.all_stages(*pair)) == 4 and not shipped.training



def test_held_shape_trains_on_board_renders_and_needs_their_masks(tmp_path):
    """The board's pixels travel from the renders through resize, augmentation and batching to
    held_shape (content 'boards'); a source without them is a clear error naming the input."""
    from depth_ros.training.data.rendered import Look, render_dataset

    root = render_dataset(tmp_path / 'boards', 'mono', 8, (64, 96), seed=4, workers=1, look=Look(content='boards'))
    overrides = ['model.init=', 'model.freeze_bn=false', 'data.resize_to=[64, 96]', 'data.batch_size=7',
                 'data.workers=0', 'data.val_batches=1', 'data.val_batch_size=2', 'log.eval_every=1000',
                 'log.ckpt_every=1000', 'log.plots=false', f'log.out={tmp_path / "run"}', *QUIET]
    trainer = Trainer(apply_overrides(load_recipe('mbv2_fbnet_board'), [f'data.source=rendered:{root}', *overrides]))
    terms = trainer.train_step(1e-4)
    assert terms['held'] > 0 and torch.isfinite(terms['loss'])
    synthetic = Trainer(apply_overrides(load_recipe('mbv2_fbnet_board'),
                                        ['data.source=synthetic', 'data.augment={}', *overrides]))
    with pytest.raises(KeyError, match="loss 'held_shape' needs the batch input\\(s\\) \\['held'\\]"):
        synthetic.train_step(1e-4)   # content 'basic': no held object
    online = Trainer(apply_overrides(load_recipe('mbv2_fbnet_board'), ['data.source=synthetic', 'data.augment={}',
                                                                       'data.content=boards', *overrides]))
    terms = online.train_step(1e-4)   # rendered on the fly, masks included
    assert terms['held'] > 0 and torch.isfinite(terms['loss'])
    # the card's input size is what each saw: the reader's resize_to; the renders' own size (not resize_to)
    assert trainer.card()['training']['input_size'] == [64, 96]
    assert online.card()['training']['input_size'] == [online.cfg.data.height, online.cfg.data.width] != [64, 96]


def test_synthetic_source_takes_content_lenses_and_photographs(tmp_path, monkeypatch):
    """data.content / data.hfov / data.textures reach the on-the-fly renderer; photographs from an
    empty cache are a clear error naming the command that fills it."""
    from depth_ros.training import streams

    cfg = apply_overrides(load_recipe('mbv2_fbnet_board_online'), ['data.content=rich', 'data.hfov=[20, 60]',
                                                                   'data.textures=false'])
    engine = streams.synthetic_engine(cfg, 'mono', torch.device('cpu'), 0)
    assert engine.content == 'rich' and engine.hfov_deg == (20.0, 60.0) and engine.photos is None
    fov = 2 * np.degrees(np.arctan(0.5 * cfg.data.width / engine.next_batch(8)['fx'].numpy()))
    assert fov.min() >= 20.0 - 1e-3 and fov.max() <= 60.0 + 1e-3
    monkeypatch.setattr(streams, 'CACHE', tmp_path / 'empty')
    streams.device_bank.cache_clear()
    with pytest.raises(FileNotFoundError, match='depth-ros-render textures'):
        streams.synthetic_engine(apply_overrides(cfg, ['data.textures=true']), 'mono', torch.device('cpu'), 0)
    streams.device_bank.cache_clear()
