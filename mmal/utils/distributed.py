"""Process-group helpers: start-up, sharding by id, combining, rank-0 writes.

mmal runs on torch.distributed through mmengine (``mmengine.dist``): the same
calls work unchanged in a single process, where they do nothing.
"""
import os
from typing import Any, Callable, List, Sequence, Tuple

import torch
import torch.distributed as torch_dist
from mmengine.dist import (all_gather_object, barrier, broadcast_object_list,
                           get_dist_info, init_dist, is_distributed)

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def init_distributed(launcher: str) -> Tuple[int, int]:
    """Join the process group started by ``launcher``.

    On GPUs this is mmengine's ``init_dist`` with NCCL (one GPU per local
    rank). Without a GPU, processes started by ``torchrun`` join a gloo
    group (mmengine's helper would select a CUDA device first).

    Args:
        launcher (str): ``'none'`` (one process), ``'pytorch'`` (torchrun),
            ``'slurm'`` or ``'mpi'``.

    Returns:
        tuple[int, int]: ``(rank, world_size)``.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got '
                         f'{launcher!r}')
    if launcher == 'none':
        if int(os.environ.get('WORLD_SIZE', '1')) > 1:
            raise RuntimeError(
                'WORLD_SIZE > 1 but --launcher none: started by torchrun '
                'without --launcher pytorch, every process would run the '
                'whole job alone. Use tools/dist_al_train.sh CONFIG GPUS.')
        return 0, 1
    if not is_distributed():
        if torch.cuda.is_available():
            init_dist(launcher, backend='nccl')
        elif launcher == 'pytorch':
            torch_dist.init_process_group(backend='gloo')
        else:
            raise RuntimeError(f'--launcher {launcher} needs GPUs; on CPU '
                               'use torchrun (--launcher pytorch, gloo)')
    return get_dist_info()


def shard(items: Sequence[Any]) -> List[Any]:
    """This rank's share of ``items``: every ``world_size``-th from ``rank``.

    Each item goes to exactly one rank (no padding, so nothing is counted
    twice); give the items in a fixed order (e.g. sorted ids) so that the
    split does not depend on how they were loaded.
    """
    rank, world = get_dist_info()
    return list(items[rank::world])


def gather_or_raise(fn: Callable[[], Any], what: str) -> List[Any]:
    """Run ``fn`` on every rank and gather the results (rank order).

    An exception on any rank is raised on every rank, naming the rank, so no
    process is left waiting in a collective for one that died.

    Returns:
        list: ``fn()`` of each rank, indexed by rank.
    """
    rank, world = get_dist_info()
    if world == 1:
        return [fn()]
    try:
        out, err = fn(), None
    except Exception as e:  # re-raised below, on every rank
        out, err = None, e
    gathered = all_gather_object(
        (None if err is None else f'{type(err).__name__}: {err}', out))
    failed = [(r, msg) for r, (msg, _) in enumerate(gathered) if msg]
    if err is not None:
        raise err
    if failed:
        r, msg = failed[0]
        raise RuntimeError(f'{what} failed on rank {r}: {msg}')
    return [o for _, o in gathered]


def broadcast_from_master(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if get_dist_info()[1] == 1:
        return obj
    box = [obj]
    broadcast_object_list(box, src=0)
    return box[0]


def is_master() -> bool:
    return get_dist_info()[0] == 0


def sync() -> None:
    """Barrier (no-op in one process)."""
    barrier()


def as_float64_sum(parts: Sequence[Sequence[torch.Tensor]],
                   like: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Sum per-rank partial sums (float64, rank order), cast like ``like``."""
    total = [torch.zeros_like(t, dtype=torch.float64) for t in like]
    for part in parts:
        total = [a + b.to(a) for a, b in zip(total, part)]
    return [t.to(dtype=x.dtype, device=x.device) for t, x in zip(total, like)]
