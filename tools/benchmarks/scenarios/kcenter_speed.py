"""Speed of k-center greedy selection on synthetic features.

The benchmark behind ``tools/benchmarks/kcenter_speed.py``. One run
(:func:`run`) draws seeded standard normal features (``num_labeled`` and
``num_unlabeled`` points of ``dim`` dimensions, :func:`make_features`) and
times separately, with :func:`~mmal.testing.benchmark.timed`, the two
steps of :func:`~mmal.selectors.k_center_greedy.k_center_greedy`:

1. **initial distances** (``initial_distances``):
   :func:`~mmal.selectors.k_center_greedy.initial_min_distances`, each
   unlabeled point's squared distance to its nearest labeled point, in
   blocks of at most ``chunk_mb`` MiB (``n * m * d`` multiply-adds,
   compute bound);
2. **picks** (``picks``): :func:`~mmal.selectors.k_center_greedy.
   greedy_picks`, ``num`` greedy picks, each one matrix-vector product
   over the ``n x d`` unlabeled features (memory bound).

Both run once on a few points first (thread pools, BLAS set-up) outside
the timing. The total is the sum of the two; the target is
:data:`TARGET_SECONDS` for the default sizes (10,000 labeled + 110,000
unlabeled 512-d float32 features, 1000 picks) on 2 CPU cores. The
one-call API adds to it only the input checks (a pass over the features)
and the move to the device.

Peak memory of each step: :class:`~mmal.testing.benchmark.PeakMemory` (on
CPU the whole process's peak resident set, the features included).
:func:`run` returns every number and the picks; :func:`report` turns them
into a table.
"""
import dataclasses
import functools
import os
import platform
from typing import Any, Dict, Optional, Tuple

import torch

from mmal.selectors.k_center_greedy import greedy_picks, initial_min_distances
from mmal.testing.benchmark import (PeakMemory, load_average, timed,
                                    torch_threads)
from mmal.utils import ConfigError

#: seconds the default sizes must take at most on 2 CPU cores
TARGET_SECONDS = 60.0
WARMUP_POINTS = 64


@dataclasses.dataclass
class KCenterSpeedOptions:
    """What one benchmark run measures.

    Args:
        num_labeled (int): Labeled points (may be 0). Defaults to 10,000.
        num_unlabeled (int): Unlabeled points. Defaults to 110,000.
        dim (int): Feature dimension. Defaults to 512.
        num (int): Picks. Defaults to 1000.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        threads (int, optional): ``torch.set_num_threads`` for the run
            (restored after). Defaults to torch's setting.
        seed (int): Seed of the features. Defaults to 0.
        chunk_mb (float): Block size bound of the initial distances, MiB.
            Defaults to 256.
        float64 (bool): Features in float64 instead of float32. Defaults
            to False.
    """
    num_labeled: int = 10000
    num_unlabeled: int = 110000
    dim: int = 512
    num: int = 1000
    device: str = 'cpu'
    threads: Optional[int] = None
    seed: int = 0
    chunk_mb: float = 256.0
    float64: bool = False

    def __post_init__(self) -> None:
        for name, low in (('num_labeled', 0), ('num_unlabeled', 1), ('dim', 1),
                          ('num', 0), ('threads', 1)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ConfigError(f'KCenterSpeedOptions.{name} must be >= '
                                  f'{low}, got {value}')
        if not self.chunk_mb > 0:
            raise ConfigError('KCenterSpeedOptions.chunk_mb must be > 0, '
                              f'got {self.chunk_mb}')
        if self.device not in ('cpu', 'cuda'):
            raise ConfigError('KCenterSpeedOptions.device must be cpu or '
                              f'cuda, got {self.device!r}')


def make_features(
        opts: KCenterSpeedOptions) -> Tuple[torch.Tensor, torch.Tensor]:
    """The benchmark's features: standard normal, seeded, drawn on the CPU
    in float32 (then cast for ``float64``) and moved to ``opts.device``.

    Returns:
        tuple[Tensor, Tensor]: ``labeled`` (num_labeled, dim) and
        ``unlabeled`` (num_unlabeled, dim).
    """
    gen = torch.Generator().manual_seed(opts.seed)
    dtype = torch.float64 if opts.float64 else torch.float32
    labeled, unlabeled = (
        torch.randn((k, opts.dim), generator=gen).to(opts.device, dtype)
        for k in (opts.num_labeled, opts.num_unlabeled))
    return labeled, unlabeled


def _warm_up(labeled: torch.Tensor, unlabeled: torch.Tensor,
             chunk_mb: float) -> None:
    """Both steps on a few points (thread pools and BLAS set up)."""
    few = unlabeled[:WARMUP_POINTS]
    greedy_picks(few,
                 initial_min_distances(labeled[:WARMUP_POINTS], few, chunk_mb),
                 2)


def run(opts: KCenterSpeedOptions) -> Dict[str, Any]:
    """Every measurement (see the module docstring).

    Args:
        opts (KCenterSpeedOptions): What to measure.

    Returns:
        dict: The results (see :func:`report`): per step (``phases``)
        ``seconds``, ``seconds_all``, ``peak_mib`` and ``start_mib``;
        ``total_seconds``, ``ms_per_pick``, ``target_met`` and ``picks``.
    """
    with torch_threads(opts.threads), torch.no_grad():
        return _run(opts)


def _run(opts: KCenterSpeedOptions) -> Dict[str, Any]:
    """:func:`run` with the thread count set."""
    load_start = load_average()
    labeled, unlabeled = make_features(opts)
    _warm_up(labeled, unlabeled, opts.chunk_mb)
    memory = PeakMemory(opts.device)
    phases: Dict[str, Dict[str, Any]] = {}
    timed_phase = functools.partial(timed, memory=memory, record=phases)
    min_sq_dist = timed_phase(
        'initial_distances',
        functools.partial(initial_min_distances, chunk_mb=opts.chunk_mb),
        lambda: (labeled, unlabeled))
    picks, _ = timed_phase('picks', greedy_picks, lambda:
                           (unlabeled, min_sq_dist.clone(), opts.num))
    total = sum(p['seconds'] for p in phases.values())
    made = len(picks)
    return dict(
        features='standard normal (seeded)',
        num_labeled=opts.num_labeled,
        num_unlabeled=opts.num_unlabeled,
        dim=opts.dim,
        num=made,
        dtype=str(unlabeled.dtype).replace('torch.', ''),
        chunk_mb=opts.chunk_mb,
        device=opts.device,
        threads=torch.get_num_threads(),
        cpus=os.cpu_count(),
        torch=torch.__version__,
        python=platform.python_version(),
        phases=phases,
        total_seconds=total,
        ms_per_pick=phases['picks']['seconds'] * 1000 /
        made if made else float('nan'),
        target_seconds=TARGET_SECONDS,
        target_met=total < TARGET_SECONDS,
        picks=picks,
        memory_kind=memory.kind,
        memory_reset_ok=memory.reset_ok,
        load_average=[load_start, load_average()],
    )


def report(res: Dict[str, Any]) -> str:
    """The human-readable table of :func:`run`'s results."""
    phases = res['phases']
    lines = [
        f'k-center greedy: {res["num_labeled"]} labeled + '
        f'{res["num_unlabeled"]} unlabeled {res["dim"]}-d {res["dtype"]} '
        f'({res["features"]}), {res["num"]} picks, {res["device"]} '
        f'({res["threads"]} threads, {res["cpus"]} cores), blocks <= '
        f'{res["chunk_mb"]:g} MiB; load average (1 min) at start '
        f'{res["load_average"][0]:.2f}, at end {res["load_average"][1]:.2f}',
        f'{"step":<22} {"seconds":>9} {"peak MiB":>9} {"(start)":>8}',
    ]
    for key, label in (('initial_distances', 'initial distances'), ('picks',
                                                                    'picks')):
        m = phases[key]
        lines.append(f'{label:<22} {m["seconds"]:>9.3f} '
                     f'{m["peak_mib"]:>9.0f} {m["start_mib"]:>8.0f}')
    lines += [
        f'{"total":<22} {res["total_seconds"]:>9.3f}',
        f'{res["ms_per_pick"]:.2f} ms per pick; target total < '
        f'{res["target_seconds"]:g} s: '
        f'{"met" if res["target_met"] else "MISSED"}',
        f'peak memory: {res["memory_kind"]}',
    ]
    if not res['memory_reset_ok']:
        lines.append('  (could not reset the peak RSS: values are the peak '
                     'since the process started)')
    return '\n'.join(lines)
