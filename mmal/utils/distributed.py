"""Process-group helpers: start-up, sharding by id, combining, rank-0 writes.

mmal runs on torch.distributed through mmengine (``mmengine.dist``): the same
calls work unchanged in a single process, where they do nothing.
"""
import os
import subprocess
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple)

import torch
import torch.distributed as torch_dist
from mmengine.dist import (all_gather_object, barrier, broadcast_object_list,
                           get_dist_info, init_dist, is_distributed)

from .errors import ConfigError

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def close_distributed() -> None:
    """Destroy this process's group, if any, before the process exits.

    A process that leaves with the group alive (e.g. on an error every
    rank raises) can be aborted while the interpreter shuts down gloo's
    threads (``terminate called without an active exception``), which
    turns the error's exit status into 134.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def init_distributed(launcher: str) -> Tuple[int, int]:
    """Join the process group started by ``launcher``.

    On GPUs this is mmengine's ``init_dist`` with NCCL (one GPU per local
    rank). Without a GPU, processes started by ``torchrun`` or ``srun`` join
    a gloo group: mmengine's helper would select a CUDA device first, and
    for Slurm it also needs ``scontrol``. mmal's Slurm start-up
    (:func:`slurm_env`) needs neither, so that srun's tasks also run on
    CPU-only nodes, and the start-up can be tested without a cluster
    (tests/test_slurm_launch.py). Either way the
    process ends up with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR`` and ``MASTER_PORT`` in its environment, as under
    torchrun: the rest of mmal and mmengine's runner see an ordinary group.

    Args:
        launcher (str): ``'none'`` (one process), ``'pytorch'`` (torchrun,
            ``tools/dist_al_train.sh``), ``'slurm'`` (``srun``,
            ``tools/slurm_al_train.sh``) or ``'mpi'`` (GPUs only).

    Returns:
        tuple[int, int]: ``(rank, world_size)``.

    Raises:
        ConfigError: ``--launcher slurm`` outside ``srun``, or no master
            address to be found (see :func:`slurm_env`).
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
        if launcher == 'slurm':
            # mmengine's init_dist('slurm') keeps a MASTER_ADDR and
            # MASTER_PORT found in the environment: on GPUs too, the
            # address is the one (or the error) given here
            os.environ.update(slurm_env())
        if torch.cuda.is_available():
            init_dist(launcher, backend='nccl')
        elif launcher in ('pytorch', 'slurm'):
            torch_dist.init_process_group(backend='gloo')
        else:
            raise RuntimeError(f'--launcher {launcher} needs GPUs; on CPU '
                               'use torchrun (--launcher pytorch, gloo) or '
                               'srun (--launcher slurm)')
    return get_dist_info()


def slurm_env(environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """torch.distributed's variables for a process started by ``srun``.

    ``srun`` starts every task itself and tells it its place through
    ``SLURM_*`` variables; torch.distributed's ``env://`` start-up reads
    torchrun's names instead. The rank is ``SLURM_PROCID``, the world size
    ``SLURM_NTASKS`` and the local rank ``SLURM_LOCALID`` (else the rank
    modulo the visible GPUs, as mmengine does). The master is
    ``MASTER_ADDR`` when set (``srun`` passes the caller's environment on),
    else the first host of the job step's ``SLURM_NODELIST``: a plain list
    (``node1,node2``) is read here, a compressed one (``node[01-04]``) is
    expanded by ``scontrol show hostnames``. The port is ``MASTER_PORT``,
    else 29500 (torch's and mmengine's default; two jobs sharing a node
    need different ports).

    Args:
        environ (Mapping[str, str], optional): The variables to read.
            Defaults to ``os.environ``.

    Returns:
        dict[str, str]: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
        ``MASTER_ADDR`` and ``MASTER_PORT``.

    Raises:
        ConfigError: ``SLURM_PROCID`` or ``SLURM_NTASKS`` is missing (not
            started by ``srun``), or there is no ``MASTER_ADDR`` and the
            first host of ``SLURM_NODELIST`` cannot be found.
    """
    env = os.environ if environ is None else environ
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS') if k not in env]
    if missing:
        raise ConfigError(
            f'--launcher slurm but {" and ".join(missing)} not set: start '
            'the processes with srun (tools/slurm_al_train.sh), or use '
            'tools/dist_al_train.sh (torchrun) outside Slurm')
    rank, world = int(env['SLURM_PROCID']), int(env['SLURM_NTASKS'])
    if 'SLURM_LOCALID' in env:
        local_rank = int(env['SLURM_LOCALID'])
    else:
        local_rank = rank % max(torch.cuda.device_count(), 1)
    return dict(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(local_rank),
        MASTER_ADDR=env.get('MASTER_ADDR')
        or _first_slurm_host(env.get('SLURM_NODELIST', '')),
        MASTER_PORT=env.get('MASTER_PORT') or '29500')


def _first_slurm_host(nodelist: str) -> str:
    """The first host of a Slurm host list (``node[01-04],gpu7``)."""
    fix = ('set MASTER_ADDR to the address of the host of rank 0 (srun '
           'passes it on to every task)')
    if not nodelist:
        raise ConfigError(f'--launcher slurm: neither MASTER_ADDR nor '
                          f'SLURM_NODELIST is set; {fix}')
    if '[' not in nodelist:  # not compressed: the hosts themselves
        return nodelist.split(',')[0]
    try:
        proc = subprocess.run(['scontrol', 'show', 'hostnames', nodelist],
                              capture_output=True,
                              text=True,
                              timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        why = f'{type(e).__name__}: {e}'
    else:
        hosts = proc.stdout.split()
        if proc.returncode == 0 and hosts:
            return hosts[0]
        why = (f'exit status {proc.returncode}: '
               f'{proc.stderr.strip() or "no host printed"}')
    raise ConfigError(
        f'--launcher slurm: MASTER_ADDR is not set and the first host of '
        f'SLURM_NODELIST={nodelist!r} could not be read with `scontrol show '
        f'hostnames` ({why}); {fix}')


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
