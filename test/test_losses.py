"""Known-case tests for depth_ros.training.losses (torch, CPU, tiny tensors)."""
import math

import numpy as np
import pytest
import torch

from depth_ros.training import losses as L
from depth_ros import metrics as M

NAN = float('nan')


def t4(rows) -> torch.Tensor:
    """Nested list (H, W) -> (1, 1, H, W) float tensor."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def _hand_case():
    """Counted pixels: errors 1 and 2; NaN GT, zero GT and a pixel outside ``valid`` don't count."""
    target = t4([[1.0, 2.0, NAN], [4.0, 0.0, 3.0]])
    pred = t4([[2.0, 4.0, 7.0], [4.0, 9.0, 300.0]])
    valid = t4([[1, 1, 1], [1, 1, 0]]).bool()
    return pred, target, valid


def test_pixel_losses_hand_computed():
    pred, target, valid = _hand_case()
    assert float(L.l1_loss(pred, target, valid)) == pytest.approx(3 / 3)
    assert float(L.rmse_loss(pred, target, valid)) == pytest.approx(math.sqrt(5 / 3))
    # SmoothL1 beta 1: |d| = 1 -> 0.5, |d| = 2 -> 1.5, |d| = 0 -> 0
    assert float(L.smooth_l1_loss(pred, target, valid)) == pytest.approx(2 / 3)
    assert float(L.smooth_l1_loss(pred, target, valid, beta=4.0)) == pytest.approx((1 / 8 + 4 / 8) / 3)


def test_masks_are_anded_never_ored():
    pred, target, valid = _hand_case()
    other = pred.clone()
    other[..., 0, 2] = other[..., 1, 1] = other[..., 1, 2] = 1e3  # uncounted pixels only
    for fn in (L.l1_loss, L.smooth_l1_loss, L.rmse_loss):
        assert float(fn(other, target, valid)) == float(fn(pred, target, valid))
    assert float(L.l1_loss(pred, target)) > 50  # without ``valid`` the 297 m error counts
    assert float(L.l1_loss(pred, torch.zeros_like(target))) == 0.0  # nothing to count


def test_nan_targets_give_finite_gradients():
    target = torch.rand(1, 1, 7, 8) + 1
    target[..., 2, 3], target[..., 5, 0:2], target[..., 0, 7] = NAN, 0.0, float('inf')
    pred, image = torch.rand(1, 1, 7, 8) + 1, torch.rand(1, 3, 7, 8)
    for name in ('l1', 'smooth_l1', 'rmse', 'edge', 'gradient', 'ssim', 'densedepth', 'fastdepth'):
        p = pred.clone().requires_grad_(True)
        build = L.build_loss(name)
        build(p, target).backward()
        assert torch.isfinite(p.grad).all(), name
    p = pred.clone().requires_grad_(True)
    L.build_loss('l1_ssim_smoothness')(p, target, image=image).backward()
    assert torch.isfinite(p.grad).all()


def test_sobel_and_edge_loss_on_ramps():
    x = torch.arange(7.0).view(1, 1, 1, 7).expand(1, 1, 6, 7)
    g = L.sobel(3.0 * x + 5.0)
    assert g.shape == (1, 2, 4, 5)
    assert torch.allclose(g[:, 0], torch.tensor(3.0)) and torch.allclose(g[:, 1], torch.tensor(0.0))
    pred, target = x + 1.0, 3.0 * x + 1.0
    # d/dx differs by 2 (SmoothL1 -> 1.5), d/dy by 0: mean over both components 0.75
    assert float(L.edge_loss(pred, target)) == pytest.approx(0.75)
    assert float(L.edge_loss(pred, target, magnitude=True)) == pytest.approx(1.5)
    lam = float(L.smooth_l1_edge_loss(pred, target) - L.smooth_l1_loss(pred, target)) / 0.75
    assert lam == pytest.approx(12.0)  # seed 002's lambda
    # a pixel without GT removes its whole 3x3 neighbourhood from the edge term
    hole = target.clone()
    hole[..., 3, 3] = NAN
    spiky = pred.clone()
    spiky[..., 3, 3] = 50.0
    assert float(L.edge_loss(spiky, hole)) == pytest.approx(0.75)


def test_gradient_loss_and_densedepth_combination():
    x = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 1, 5, 6)
    target = torch.full_like(x, 2.0)
    assert float(L.gradient_loss(x + 2.0, target)) == pytest.approx(1.0)  # |dx| = 1, dy = 0
    rng = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, 16, 16, generator=rng) + 1
    target = torch.rand(2, 1, 16, 16, generator=rng) + 1
    manual = (0.3 * L.l1_loss(pred, target) + L.gradient_loss(pred, target)
              + (1 - L.ssim(pred, target)) / 2)
    built = L.build_loss({'name': 'densedepth', 'w_l1': 0.3})
    assert float(built(pred, target)) == pytest.approx(float(manual))
    assert float(L.densedepth_loss(target, target)) == pytest.approx(0.0, abs=1e-6)


def test_ssim_matches_numpy_metric_and_masks():
    rng = torch.Generator().manual_seed(1)
    target = torch.rand(1, 1, 20, 22, generator=rng) * 4 + 1
    target[..., 3:8, 4:9] = NAN
    pred = target.nan_to_num(2.0) + 0.3 * torch.randn(target.shape, generator=rng)
    for window in ('gaussian', 'box'):
        ours = float(L.ssim(pred, target, data_range=5.0, window=window, size=7))
        ref = M.ssim(pred[0, 0].double().numpy(), target[0, 0].double().numpy(), data_range=5.0,
                     window=window, size=7)
        assert ours == pytest.approx(ref, abs=1e-5)
    assert float(L.ssim_loss(target.nan_to_num(1.0), target.nan_to_num(1.0))) == pytest.approx(0.0, abs=1e-6)


def test_edge_aware_smoothness_prefers_depth_edges_at_image_edges():
    image = torch.zeros(1, 3, 8, 8)
    image[..., 4:] = 1.0  # vertical image edge between columns 3 and 4
    aligned, misplaced = torch.ones(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    aligned[..., 4:] = 3.0
    misplaced[..., 2:] = 3.0
    assert float(L.edge_aware_smoothness(torch.ones(1, 1, 8, 8), image)) == 0.0
    a, m = float(L.edge_aware_smoothness(aligned, image)), float(L.edge_aware_smoothness(misplaced, image))
    # 8 jumps of 2 among 8 x 7 x-differences; image-gradient weight exp(-1) at the image edge
    assert a == pytest.approx(2 * math.exp(-1) / 7) and m == pytest.approx(2 / 7)


def _pairs(rows):
    return torch.tensor(M.normalize_pairs(np.array(rows, float), (2, 2)), dtype=torch.float32)[None]


def test_ranking_loss_sign_and_values():
    depth = t4([[1.0, 2.0], [3.0, 4.0]])
    closer = _pairs([[0, 0, 0, 1, +1]])   # (0,0) at 1 m is closer than (0,1) at 2 m: right order
    farther = _pairs([[0, 0, 0, 1, -1]])  # the label says the opposite
    equal = _pairs([[0, 0, 0, 1, 0]])
    assert float(L.ranking_loss(depth, closer)) == pytest.approx(math.log1p(math.exp(-1)))
    assert float(L.ranking_loss(depth, farther)) == pytest.approx(math.log1p(math.exp(1)))
    assert float(L.ranking_loss(depth, equal)) == pytest.approx(1.0)
    # seed 004 Eq. 2 as printed: r = 1 -> log(1 + exp(z_j - z_i)), i.e. larger z = closer
    assert float(L.ranking_loss(depth, closer, higher_is_closer=True)) == pytest.approx(math.log1p(math.exp(1)))
    both = torch.cat([closer, _pairs([[1, 1, 0, 0, NAN]])], dim=1)  # NaN row = padding
    assert float(L.ranking_loss(depth, both)) == pytest.approx(math.log1p(math.exp(-1)))
    mask = torch.tensor([[False, True]])
    masked = L.ranking_loss(depth, torch.cat([farther, closer], 1), mask)
    assert float(masked) == pytest.approx(math.log1p(math.exp(-1)))
    # a gradient step on a "farther" label pushes z_i up and z_j down (depth-like output)
    p = depth.clone().requires_grad_(True)
    L.ranking_loss(p, farther).backward()
    assert p.grad[0, 0, 0, 0] < 0 < p.grad[0, 0, 0, 1]


def test_kd_losses():
    rng = torch.Generator().manual_seed(2)
    feat = torch.randn(2, 6, 4, 5, generator=rng)
    assert float(L.kd_pairwise_loss(feat, feat)) == pytest.approx(0.0, abs=1e-6)
    # different channel count, same geometry of node similarities -> 0
    teacher = torch.cat([feat, 2 * feat, -feat], 1)
    assert float(L.kd_pairwise_loss(feat, teacher)) == pytest.approx(0.0, abs=1e-6)
    big_teacher = torch.nn.functional.interpolate(teacher, scale_factor=2, mode='nearest')
    assert float(L.kd_pairwise_loss(feat, big_teacher)) == pytest.approx(0.0, abs=1e-6)  # pooled to 4x5
    other = torch.randn(2, 3, 8, 10, generator=rng)
    assert 0 < float(L.kd_pairwise_loss(feat, other)) < 4
    # nodes outside ``valid`` don't count: differences only there leave the loss at 0
    changed = teacher.clone()
    changed[..., 0, :] = torch.randn(2, 18, 5, generator=rng)
    valid = torch.ones(2, 1, 4, 5, dtype=torch.bool)
    valid[..., 0, :] = False
    assert float(L.kd_pairwise_loss(feat, changed)) > 1e-3
    assert float(L.kd_pairwise_loss(feat, changed, valid)) == pytest.approx(0.0, abs=1e-6)
    # pixel KD: RMSE to the teacher, negative teacher values count, teacher gets no gradient
    student, teach = t4([[0.0, 1.0]]), t4([[-2.0, 1.0]]).requires_grad_(True)
    loss = L.kd_pixel_loss(student.requires_grad_(True), teach)
    assert loss.item() == pytest.approx(math.sqrt(2.0))
    loss.backward()
    assert teach.grad is None and student.grad is not None


def test_multi_head_weights_and_resized_target():
    target = torch.full((1, 1, 8, 8), 2.0)
    target[..., :2, :2] = NAN
    heads = [torch.full((1, 1, 8, 8), 1.0), torch.full((1, 1, 4, 4), 1.0), torch.full((1, 1, 2, 2), 1.0)]
    assert float(L.multi_head_loss(L.l1_loss, heads, target)) == pytest.approx(1.0)  # 0.5 + 0.25 + 0.25
    built = L.build_loss({'name': 'l1', 'head_weights': [0.5, 0.25, 0.25]})
    assert float(built(heads, target)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        L.l1_loss(heads[1], target)  # the caller must resize
    # masked area resize: cells at least half valid keep the mean of their valid pixels
    t = t4([[1.0, 3.0, 0.0, 0.0], [NAN, 0.0, 0.0, 5.0]])
    small, keep = L.resize_target(torch.nan_to_num(t), L.target_mask(t), (1, 2))
    assert keep.tolist() == [[[[True, False]]]] and float(small[0, 0, 0, 0]) == pytest.approx(2.0)


def test_anynet_stage_loss():
    gt = t4([[10.0, 250.0, 0.0, 20.0]])  # 250 >= max disparity 192 and 0 are excluded
    last = gt.clone()
    last[..., 1] = 0.0  # a huge error where gt >= max disparity
    stages = [gt + 2.0, gt + 1.0, gt + 0.5, last]
    expected = 0.25 * 1.5 + 0.5 * 0.5 + 1.0 * 0.125 + 1.0 * 0.0
    assert float(L.anynet_stage_loss(stages, gt)) == pytest.approx(expected)
    assert float(L.build_loss('anynet')(stages[:3], gt)) == pytest.approx(0.25 * 1.5 + 0.5 * 0.5 + 0.125)
    assert float(L.anynet_stage_loss(stages, gt, max_disparity=300.0)) > expected


def test_build_loss_errors():
    with pytest.raises(KeyError):
        L.build_loss({'name': 'no_such_loss'})
    with pytest.raises(TypeError):
        L.build_loss({'name': 'densedepth', 'w_l2': 1.0})
    assert {'densedepth', 'fastdepth', 'ranking', 'kd_pairwise', 'anynet'} <= set(L.list_losses())


def _two_losses(rebalancer, periods, slow=0.98, fast=0.7):
    """Feed ``periods`` periods where loss 'a' decays slowly and 'b' fast."""
    for k in range(periods):
        for _ in range(rebalancer.period):
            rebalancer.update({'a': 5.0 * slow ** k, 'b': 0.2 * fast ** k})


def test_rebalancer_hard_to_easy_emphasises_slow_loss_first():
    reb = L.LossRebalancer(['a', 'b'], period=3, mode='hard_to_easy', ramp=10)
    assert reb.weights == {'a': 0.5, 'b': 0.5} and reb.emphasis == -3.0
    _two_losses(reb, 2)
    w = reb.weights
    assert w['a'] > 0.5 > w['b']  # hard (slowly decreasing) 'a' gains weight first
    easy = L.LossRebalancer(['a', 'b'], period=3, mode='easy')
    _two_losses(easy, 2)
    assert easy.weights['b'] > 0.5 > easy.weights['a']
    total = reb.combine({'a': torch.tensor(2.0, requires_grad=True), 'b': torch.tensor(1.0)})
    assert total.item() == pytest.approx(2 * w['a'] + w['b'])
    late = L.LossRebalancer(['a', 'b'], period=1, mode='hard_to_easy', ramp=4)
    _two_losses(late, 6)
    assert late.emphasis == 3.0  # ramp done: easy losses now emphasised


def test_rebalancer_state_dict_round_trip():
    a = L.LossRebalancer(['a', 'b'], period=2)
    _two_losses(a, 3)
    a.update({'a': 1.0, 'b': 1.0})  # mid-period
    b = L.LossRebalancer(['a', 'b'], period=2)
    b.load_state_dict(a.state_dict())
    for k in range(3):
        vals = {'a': torch.tensor(0.9 ** k), 'b': torch.tensor(0.5 ** k)}
        assert a.update(vals) == b.update(vals)
    assert a.weights == b.weights
    with pytest.raises(ValueError):
        L.LossRebalancer(['x'], period=2).load_state_dict(a.state_dict())


def test_shape_losses_ignore_scale_and_match_numpy():
    """log_l1 is |log ratio|; ssi_disparity (without its gradient term) is |aligned - gt| / mean(gt) of
    disparity after the evaluation's scale-and-shift fit (depth_ros.metrics.align), 0 for any prediction
    whose inverse is an affine map of the ground truth's, and it never sees masked or NaN pixels."""
    g = torch.Generator().manual_seed(5)
    depth = torch.rand(2, 1, 16, 20, generator=g) * 4 + 0.5
    depth[0, :, :3] = NAN
    assert L.build_loss('log_l1')(depth * 2, depth).item() == pytest.approx(math.log(2), rel=1e-6)
    ssi = L.build_loss({'name': 'ssi_disparity', 'grad': 0.0})
    affine = 1.0 / (0.3 / depth + 0.7)
    assert ssi(affine, depth).item() < 1e-5
    assert L.build_loss('ssi_disparity')(affine, depth).item() < 1e-5    # gradient term too
    pred = torch.rand(2, 1, 16, 20, generator=g) * 4 + 0.5
    errors = []
    for i in range(2):
        gt = 1.0 / depth[i, 0].numpy()
        aligned = M.align(1.0 / pred[i, 0].numpy(), gt, mode='lsq_shift')
        errors.append((np.abs(aligned - gt) / np.nanmean(gt))[np.isfinite(gt)])
    expected = float(np.concatenate(errors).mean())    # pooled over the batch's pixels
    assert ssi(pred, depth).item() == pytest.approx(expected, rel=1e-4) and expected > 0.05
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[1, :, :, :5] = False
    garbage = pred.clone()
    garbage[1, :, :, :5] = 1e-6
    garbage[0, :, :3] = 1e3
    assert ssi(garbage, depth, valid).item() == pytest.approx(ssi(pred, depth, valid).item(), rel=1e-5)



def test_held_shape_is_the_objects_scale_invariant_log_error():
    """held_shape scores the held object alone: 0 for any scale of the truth, blind to pixels off the
    object and to images whose object is too small, and for a flat prediction (grad 0) it is the mean
    |log gt - mean log gt| over the object, the constant map's error that median scaling leaves."""
    g = torch.Generator().manual_seed(7)
    rows = torch.linspace(0.0, 1.0, 16).view(1, 1, 16, 1).expand(2, 1, 16, 20)
    depth = 1.0 / (0.5 + 0.5 * rows) + 0.01 * torch.rand(2, 1, 16, 20, generator=g)  # a slanted plane
    held = torch.zeros_like(depth)
    held[0, :, 4:12, 5:15] = 1.0
    held[1, :, 0, 0] = 1.0                                    # 1 pixel: under min_share, not counted
    loss = L.build_loss('held_shape')
    assert loss(3.0 * depth, depth, held=held).item() < 1e-6
    flat = torch.full_like(depth, 2.0)
    log_gt = torch.log(depth[0, 0, 4:12, 5:15]).double().numpy()
    expected = float(np.abs(log_gt - log_gt.mean()).mean())
    level = L.build_loss({'name': 'held_shape', 'grad': 0.0})
    assert level(flat, depth, held=held).item() == pytest.approx(expected, rel=1e-4)
    garbage = flat.clone()
    garbage[held < 0.5] = 1e-6
    garbage[1] = 1e3
    assert loss(garbage, depth, held=held).item() == pytest.approx(loss(flat, depth, held=held).item(), rel=1e-6)
    assert loss(flat, depth, held=torch.zeros_like(depth)).item() == 0.0


def _toy_cases():
    """(name, kwargs for build_loss, pred tensor, target, extra inputs) for every registered loss."""
    g = torch.Generator().manual_seed(3)
    depth = torch.rand(2, 1, 12, 12, generator=g) * 3 + 1
    depth[:, :, :2, :3] = NAN
    image = torch.rand(2, 3, 12, 12, generator=g)
    start = torch.rand(2, 1, 12, 12, generator=g) * 3 + 1
    pairs = torch.rand(2, 4, 5, generator=g)
    pairs[..., 4] = torch.tensor([1.0, -1.0, 0.0, 1.0])
    feats = torch.randn(2, 8, 6, 6, generator=g)
    dense = ['l1', 'smooth_l1', 'rmse', 'edge', 'gradient', 'ssim', 'densedepth', 'fastdepth', 'log_l1',
             'ssi_disparity']
    cases = [(n, {'name': n}, start, depth, {}) for n in dense]
    cases += [('l1_ssim_smoothness', {'name': 'l1_ssim_smoothness'}, start, depth, {'image': image}),
              ('kd_pixel', {'name': 'kd_pixel'}, start, depth - 2.5, {}),
              ('ranking', {'name': 'ranking'}, start, pairs, {}),
              ('kd_pairwise', {'name': 'kd_pairwise', 'grid': [3, 3]}, torch.randn(2, 4, 6, 6, generator=g), feats, {}),
              ('anynet', {'name': 'anynet'}, [start * 10, start * 10], depth * 10, {}),
              ('kd_stages', {'name': 'kd_stages'}, [start * 10, start * 10], [depth * 10, depth * 10 - 5], {}),
              ('held_shape', {'name': 'held_shape'}, start, depth, {'held': (image[:, :1] > 0.3).float()}),
              ('heads', {'name': 'densedepth', 'head_weights': [0.5, 0.25, 0.25]},
               [start, start[..., ::2, ::2], start[..., ::4, ::4]], depth, {})]
    return cases


@pytest.mark.parametrize('case', _toy_cases(), ids=lambda c: c[0])
def test_every_loss_has_finite_gradient_and_one_step_lowers_it(case):
    _, cfg, pred, target, extra = case
    loss_fn = L.build_loss(cfg)
    params = [p.clone().requires_grad_(True) for p in (pred if isinstance(pred, list) else [pred])]
    inp = params if isinstance(pred, list) else params[0]
    before = loss_fn(inp, target, **extra)
    before.backward()
    for p in params:
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    with torch.no_grad():
        for p in params:
            p -= 1e-2 * p.grad / p.grad.abs().max()
    assert loss_fn(inp, target, **extra).item() < before.item()
