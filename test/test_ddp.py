"""Two CPU processes on gloo train the same model: parameters stay identical, rank 0 alone writes."""
from __future__ import annotations

import json
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from depth_ros.training.config import apply_overrides, config_from_dict_raw, load_recipe
from depth_ros.training.streams import train_stream
from depth_ros.training.trainer import Trainer

STEPS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg_dict: dict, out: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    cfg = config_from_dict_raw(cfg_dict)
    first = train_stream(cfg, 'mono', torch.device('cpu'), rank, world).next_batch()['image']
    trainer = Trainer(cfg)
    start = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
    trainer.run()
    params = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    gathered = [torch.zeros_like(params) for _ in range(world)]
    dist.all_gather(gathered, params)
    batches = [torch.zeros(()) for _ in range(world)]
    dist.all_gather(batches, first.sum())
    result = {'max_param_diff': max(float((g - gathered[0]).abs().max()) for g in gathered),
              'moved': float((params - start).abs().max()), 'logs': trainer.logger is not None,
              'first_batch_sums': [float(b) for b in batches], 'step': trainer.step,
              'loss': trainer.history[-1][1]['loss']}
    with open(os.path.join(out, f'rank{rank}.json'), 'w') as f:
        json.dump(result, f)
    trainer.close()  # leaves the group it did not create alone
    dist.destroy_process_group()


def test_two_processes_keep_identical_parameters(tmp_path):
    run = tmp_path / 'run'
    cfg = apply_overrides(load_recipe('mbv2_fbnet_synthetic'), [
        'data.height=64', 'data.width=64', 'data.batch_size=2', 'data.val_batches=1', 'data.val_batch_size=2',
        f'schedule.max_steps={STEPS}', 'log.log_every=1', 'log.eval_every=1000', 'log.ckpt_every=2',
        'log.plots=false', 'log.progress=false', 'log.tensorboard=false', 'system.device=cpu', f'log.out={run}'])
    mp.spawn(_worker, args=(2, _free_port(), cfg.to_dict(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2)]
    assert ranks[0]['max_param_diff'] == 0.0 and ranks[0]['moved'] > 0  # trained, and in lockstep
    assert ranks[0]['step'] == ranks[1]['step'] == STEPS
    assert ranks[0]['loss'] == ranks[1]['loss']  # the logged loss is the mean over both processes
    sums = ranks[0]['first_batch_sums']
    assert sums[0] != sums[1]  # every rank draws its own synthetic batches
    assert ranks[0]['logs'] and not ranks[1]['logs']  # only rank 0 logs and saves
    ckpt = torch.load(run / 'last.pt', weights_only=True)
    assert ckpt['step'] == STEPS and [r['stream']['index'] for r in ckpt['ranks']] == [STEPS, STEPS]
    assert len((run / 'train.csv').read_text().strip().splitlines()) == STEPS + 1
    assert not list(run.glob('*.tmp'))
