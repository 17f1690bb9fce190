"""Speed of k-center greedy (core-set) selection on synthetic features.

Times the two steps of :func:`mmal.selectors.k_center_greedy.
k_center_greedy` on seeded standard normal features: the initial distances
(each unlabeled point to its nearest labeled point, in blocks) and the
greedy picks (one matrix-vector product over the unlabeled features per
pick), with the peak memory of each, the total, the milliseconds per pick
and whether the total meets the 60 s target (meant for the default sizes
on 2 CPU cores). What each step computes:
``tools/benchmarks/scenarios/kcenter_speed.py``.

``--out`` writes every number as JSON, the picks included.

On a machine shared with other processes, ``--threads`` below the number
of cores keeps the timings stable (a busy core stalls every OpenMP
thread).

Example::

    python tools/benchmarks/kcenter_speed.py --out kcenter.json
    python tools/benchmarks/kcenter_speed.py --threads 1
    python tools/benchmarks/kcenter_speed.py --device cuda
"""
import argparse
from typing import Any, Dict, Optional, Sequence

from mmal.testing.benchmark import check_cli, print_and_dump
from scenarios.kcenter_speed import KCenterSpeedOptions, report, run


def options(args: argparse.Namespace) -> KCenterSpeedOptions:
    """The benchmark's options from the command line's."""
    return KCenterSpeedOptions(**{
        k: v
        for k, v in vars(args).items() if k != 'out'
    })


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        description='Speed of mmal k-center greedy selection: initial '
        'distances and picks on synthetic features.')
    p.add_argument(
        '--num-labeled',
        type=int,
        default=10000,
        help='labeled points (default 10000)')
    p.add_argument(
        '--num-unlabeled',
        type=int,
        default=110000,
        help='unlabeled points (default 110000)')
    p.add_argument(
        '--dim', type=int, default=512, help='feature dimension (default 512)')
    p.add_argument(
        '--num', type=int, default=1000, help='picks (default 1000)')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch threads (default: torch\'s, one per core)')
    p.add_argument(
        '--chunk-mb',
        type=float,
        default=256.0,
        help='size bound of one block of initial distances, MiB '
        '(default 256)')
    p.add_argument(
        '--float64',
        action='store_true',
        help='features in float64 instead of float32')
    p.add_argument('--seed', type=int, default=0, help='seed of the features')
    p.add_argument('--out', default=None, help='write the numbers as JSON')
    args = p.parse_args(argv)
    check_cli(p, args, options)
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Parse the options, run, print the table, write the JSON."""
    args = parse_args(argv)
    res = run(options(args))
    print_and_dump(args, res, report(res))
    return res


if __name__ == '__main__':
    main()
