"""DDP on 2 CPU ranks (gloo): ``find_unused_parameters`` comes from the model, and the logged loss
is the global batch's (:class:`~mma.engine.GlobalLossLogHook`), not rank 0's own."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config

import mma
from mma.engine import GlobalLossLogHook, MMARunner, cpu_ddp_wrapper_cfg
from mma.models import IGNORE_INDEX
from mma.toy import tiny_lavin_cfg


def _batch(rows):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 500, (4, 10), generator=g)
    labels = torch.full_like(ids, IGNORE_INDEX)
    for i, n in enumerate((2, 7, 3, 5)):  # unequal answers: per-rank means differ from the global
        labels[i, -n:] = ids[i, -n:]
    return dict(input_ids=ids[rows], labels=labels[rows], has_image=torch.zeros(len(rows)).bool(),
                visual_pos=torch.zeros(len(rows), dtype=torch.long), images=None,
                lengths=torch.full((len(rows), ), 10))


def _wrap(model):
    runner = object.__new__(MMARunner)  # only what wrap_model reads
    runner._distributed, runner.cfg = True, Config(dict())
    return runner.wrap_model(cpu_ddp_wrapper_cfg(), model)


def _rank(rank: int, world: int, init_file: str, out: dict) -> None:
    os.environ['LOCAL_RANK'] = str(rank)
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    try:
        torch.manual_seed(0)
        text_only = mma.build_model(dict(tiny_lavin_cfg(), vision=None))
        with_vision = mma.build_model(tiny_lavin_cfg())
        ddp = _wrap(text_only)
        result = dict(text_only=ddp.find_unused_parameters,
                      with_vision=_wrap(with_vision).find_unused_parameters)
        full = _batch([0, 1, 2, 3])
        n = int((full['labels'][:, 1:] != IGNORE_INDEX).sum())
        mine = _batch([2 * rank, 2 * rank + 1])
        mine['num_loss_tokens'] = n / world  # what the token-mean loops give each rank
        for _ in range(2):  # DDP with find_unused_parameters=False: every parameter is used
            loss = ddp(mine, mode='loss')['loss']
            loss.backward()
        outputs = dict(loss=loss.detach().clone())
        GlobalLossLogHook().after_train_iter(None, 0, mine, outputs)
        result.update(own=float(loss), logged=float(outputs['loss']),
                      single=float(text_only(full, mode='loss')['loss']))
        out[rank] = result
    finally:
        dist.destroy_process_group()


def test_two_ranks_find_unused_from_model_and_global_loss(tmp_path):
    with mp.Manager() as manager:
        out = manager.dict()
        mp.start_processes(_rank, args=(2, str(tmp_path / 'init'), out), nprocs=2, join=True,
                           start_method='fork')  # fork: no second import of mma
        out = dict(out)
    for r in (0, 1):
        assert out[r]['text_only'] is False  # every trainable tensor is used in every step
        assert out[r]['with_vision'] is True  # an image-free batch skips the projector
        # the logged loss is the one process's loss of the whole batch, on every rank
        assert abs(out[r]['logged'] - out[r]['single']) < 1e-5
    assert abs(out[0]['own'] - out[0]['single']) > 1e-3  # rank 0's own figure differs
