"""Timing, peak memory and comparisons for mmal's benchmarks.

Model-agnostic: a phase is any callable, scores are dicts from sample id to
a float (``None``: the image was not scored), and parameter-shaped results
are lists of tensors, one per block of θ.
"""
import argparse
import contextlib
import gc
import math
import os
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch

Blocks = List[torch.Tensor]  # one tensor per block of θ
Scores = Dict[str, Optional[float]]  # sample id -> score (None: unscored)


# -- command lines and settings -----------------------------------------------
@contextlib.contextmanager
def torch_threads(num: Optional[int]) -> Iterator[None]:
    """``torch.set_num_threads(num)`` inside the context (``None``: keep
    torch's), restored on exit."""
    before = torch.get_num_threads()
    if num:
        torch.set_num_threads(num)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_cli(parser: argparse.ArgumentParser, args: argparse.Namespace,
              options: Callable[[argparse.Namespace], Any]) -> None:
    """Exit through ``parser.error`` on ``--device cuda`` without CUDA, or
    on options that ``options(args)`` refuses (a ``ValueError``, e.g.
    mmal's ``ConfigError``)."""
    if getattr(args, 'device', 'cpu') == 'cuda' and \
            not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device')
    try:
        options(args)
    except ValueError as e:
        parser.error(str(e))


def print_and_dump(args: argparse.Namespace, res: Dict[str, Any],
                   text: str) -> None:
    """Print a benchmark's report ``text``; with ``args.out`` also write the
    options and results as JSON."""
    import mmengine
    print(text)
    if args.out:
        mmengine.dump(dict(args=vars(args), **res), args.out, indent=1)
        print(f'wrote {args.out}')


# -- memory and timing --------------------------------------------------------
def _status_kib(field: str) -> Optional[int]:
    """A ``kB`` field of ``/proc/self/status`` (None where unreadable)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of a phase: CUDA allocator, or the process's peak RSS.

    On CUDA: ``max_memory_allocated`` after ``reset_peak_memory_stats``. On
    CPU: the process's peak resident set (``VmHWM`` of
    ``/proc/self/status`` after writing ``5`` to ``/proc/self/clear_refs``),
    i.e. the whole process and not the phase alone; ``reset_ok`` turns
    False where the peak cannot be reset (it is then the peak since the
    process started).

    Args:
        device (str): ``'cuda'`` or ``'cpu'``.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.kind = ('cuda max_memory_allocated'
                     if device == 'cuda' else 'process RSS (VmHWM)')
        self.reset_ok = True
        self.start_mib = 0.0

    def reset(self) -> None:
        """Start a phase: forget the previous peak."""
        if self.device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start_mib = torch.cuda.memory_allocated() / 2**20
            return
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # reset the peak RSS to the current RSS
        except OSError:
            self.reset_ok = False  # VmHWM then is the peak since start
        self.start_mib = (_status_kib('VmRSS') or 0) / 1024

    def peak(self) -> Dict[str, float]:
        """The phase's peak and the usage at its start.

        Returns:
            dict: ``peak_mib`` and ``start_mib`` (MiB, one decimal).
        """
        if self.device == 'cuda':
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = (_status_kib('VmHWM') or 0) / 1024
        return dict(
            peak_mib=round(peak, 1), start_mib=round(self.start_mib, 1))


def load_average() -> float:
    """The 1-minute load average (other processes distort timings)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float('nan')


def sync(device: str) -> None:
    """Wait for queued GPU work (so that timings are complete).

    Args:
        device (str): ``'cuda'`` waits; any other device returns at once.
    """
    if device == 'cuda':
        torch.cuda.synchronize()


def timed(name: str,
          fn: Callable[..., Any],
          make_args: Callable[[], tuple],
          memory: PeakMemory,
          record: Dict[str, Dict[str, Any]],
          repeat: int = 1) -> Any:
    """Run ``fn(*make_args())`` ``repeat`` times; record the fastest.

    ``make_args`` (e.g. fresh copies of the inputs) runs outside the timed
    region; GPU work is waited for on ``memory.device`` before and after.
    Each run's time is printed to stderr as ``  [name] 0.123s``.

    Args:
        name (str): The phase, the key in ``record``.
        fn (Callable): The timed computation.
        make_args (Callable[[], tuple]): ``fn``'s arguments, made afresh
            for every run.
        memory (PeakMemory): Measures the peak memory of each run.
        record (dict): Gets ``record[name]``: ``seconds`` (fastest run),
            ``seconds_all`` and the peak memory (the run with the largest
            ``peak_mib``, see :meth:`PeakMemory.peak`).
        repeat (int): Number of runs. Defaults to 1.

    Returns:
        The result of the last run.
    """
    times, peaks, result = [], [], None
    for _ in range(repeat):
        call_args = make_args()
        gc.collect()
        memory.reset()
        sync(memory.device)
        start = time.perf_counter()
        result = fn(*call_args)
        sync(memory.device)
        times.append(time.perf_counter() - start)
        peaks.append(memory.peak())
        print(f'  [{name}] {times[-1]:.3f}s', file=sys.stderr, flush=True)
    best = max(peaks, key=lambda m: m['peak_mib'])
    record[name] = dict(seconds=min(times), seconds_all=times, **best)
    return result


# -- numbers ------------------------------------------------------------------
def ratio(a: float, b: float) -> float:
    """``a / b`` (nan when ``b`` is 0)."""
    return a / b if b else float('nan')


def round_up(x: float) -> float:
    """``x`` (> 0) rounded up to two significant digits."""
    step = 10.0**(math.floor(math.log10(x)) - 1)
    return float(round(math.ceil(x / step - 1e-9) * step, 12))


def fmt_list(xs: Sequence[float]) -> str:
    """Numbers in short scientific notation, e.g. ``[1.00e+00, 2.50e-03]``."""
    return '[' + ', '.join(f'{x:.2e}' for x in xs) + ']'


# -- comparisons --------------------------------------------------------------
def block_rel_diff(a: Blocks, b: Blocks) -> List[float]:
    """``|a_b - b_b| / |b_b|`` per block (Frobenius norms, in float64).

    Args:
        a (list[Tensor]): One tensor per block.
        b (list[Tensor]): The reference, same shapes.

    Returns:
        list[float]: One relative difference per block.
    """
    return [
        float((x.double() - y.double()).norm() /
              max(float(y.double().norm()), 1e-30)) for x, y in zip(a, b)
    ]


def compare_scores(ours: Scores, ref: Scores) -> Dict[str, Any]:
    """Largest per-image relative difference and ranking agreement.

    The ranking is the ISAL selector's: influence ``-value`` ascending,
    i.e. ``value`` descending, over the images both paths score (all of
    them when the unscored sets agree).

    Args:
        ours (dict): Sample id -> score (None: unscored).
        ref (dict): The reference scores.

    Returns:
        dict: ``num_compared``, ``max_rel_diff``,
        ``max_abs_diff_over_max_abs`` (largest absolute difference over the
        largest ``|ref|``), ``same_unscored`` and ``same_ranking``.
    """
    unscored_same = ({k
                      for k, x in ours.items() if x is None
                      } == {k
                            for k, x in ref.items() if x is None})
    both = sorted(k for k in ref
                  if ref[k] is not None and ours.get(k) is not None)
    rel = [abs(ours[k] - ref[k]) / max(abs(ref[k]), 1e-30) for k in both]
    scale = max((abs(ref[k]) for k in both), default=0.0)
    absd = max((abs(ours[k] - ref[k]) for k in both), default=0.0)
    rank_ours = sorted(both, key=lambda k: -ours[k])
    rank_ref = sorted(both, key=lambda k: -ref[k])
    return dict(
        num_compared=len(both),
        max_rel_diff=max(rel, default=0.0),
        max_abs_diff_over_max_abs=absd / scale if scale else 0.0,
        same_unscored=unscored_same,
        same_ranking=unscored_same and rank_ours == rank_ref)


def score_differences(ref: Scores, other: Scores, order: Callable[[Scores],
                                                                  List[str]],
                      budget: int) -> Dict[str, Any]:
    """Differences of ``other``'s scores and selection from ``ref``'s.

    Compared over the images ``ref`` scores (``other`` must score them
    too).

    Args:
        ref (dict): Sample id -> score (None: unscored), the reference.
        other (dict): The scores compared with it.
        order (Callable[[dict], list[str]]): The selector's ranking of a
            score dict (e.g. ``lambda s: selector.order(s, 0)``).
        budget (int): Images selected: the first ``budget`` of ``order``.

    Returns:
        dict: ``scored``, ``same_scored_set``, ``max_rel`` and
        ``median_rel`` (relative to ``|ref|``), ``num_rel_above_1e3``,
        ``max_abs_over_std`` (largest absolute difference over the standard
        deviation of ``ref``'s scores), ``spearman`` (rank correlation) and
        ``selection_changes`` (images selected from ``ref`` but not from
        ``other``).
    """
    scored = [k for k, v in ref.items() if v is not None]
    a = np.array([ref[k] for k in scored])
    b = np.array([other[k] for k in scored])
    rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-12)
    ranks = [x.argsort().argsort() for x in (a, b)]
    top = [set(order(x)[:budget]) for x in (ref, other)]
    return dict(
        scored=len(scored),
        same_scored_set=sorted(scored) == sorted(k for k, v in other.items()
                                                 if v is not None),
        max_rel=float(rel.max()),
        median_rel=float(np.median(rel)),
        num_rel_above_1e3=int((rel > 1e-3).sum()),
        max_abs_over_std=float(np.abs(a - b).max() / a.std()),
        spearman=float(np.corrcoef(*ranks)[0, 1]),
        selection_changes=len(top[0] - top[1]))
