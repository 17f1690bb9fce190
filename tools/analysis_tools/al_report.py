"""Report an active-learning experiment: curves, the paper's table, savings.

    python tools/analysis_tools/al_report.py WORK_DIR [WORK_DIR ...]
        [--reference random] [--out-dir DIR] [--include-unfinished]
        [--formats png svg] [--title TEXT]

Each WORK_DIR is an experiment's folder (``tools/al_train.py CONFIG ...
--seeds ...``), a config's folder of ``seed_<k>`` runs, or one run's work
dir. Runs are grouped by config name (one curve per selector) and averaged
over seeds. Written to ``--out-dir`` (default ``<first WORK_DIR>/report``):

* ``al_report.md``: notes (missing seeds, unfinished runs), the mean curve
  table (metric, cost, ``10k x metric / cost`` per selector and cycle) and
  the savings at equal performance against the reference selector (the
  random one by default), per seed too, saying when the spread includes
  zero; also printed;
* ``al_curves.csv`` and ``al_savings.csv``: the same numbers;
* ``al_curves.png`` / ``.svg``: the metric against labeled cost and images,
  the mean over seeds with a min-max band.

Runs of different experiments (data, metric, initial size, budgets, or a
seed's initial labeled set) are refused, naming what differs.
"""
import argparse
import os.path as osp
import sys

from mmal.analysis import make_report
from mmal.utils import UserError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Tables, savings and plots of active-learning runs')
    parser.add_argument(
        'work_dirs',
        nargs='+',
        metavar='WORK_DIR',
        help='experiment, config or run folders')
    parser.add_argument(
        '--reference',
        help='the selector the others are compared with: a config name or '
        'its prefix (default: the random selector\'s runs)')
    parser.add_argument('--out-dir', help='default: <first WORK_DIR>/report')
    parser.add_argument(
        '--include-unfinished',
        action='store_true',
        help='use the evaluated cycles of unfinished runs (left out and '
        'named by default)')
    parser.add_argument(
        '--formats',
        nargs='*',
        default=['png', 'svg'],
        help='figure formats (none: no figure)')
    parser.add_argument('--title', help='title of the figure and report')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out_dir = args.out_dir or osp.join(args.work_dirs[0], 'report')
    try:
        report = make_report(
            args.work_dirs,
            out_dir,
            reference=args.reference,
            include_unfinished=args.include_unfinished,
            plot_formats=args.formats,
            title=args.title)
    except UserError as e:
        print(f'al_report.py: error: {e}', file=sys.stderr)
        sys.exit(2)
    print(report.markdown)
    print('written: ' + ', '.join(report.files))


if __name__ == '__main__':
    main()
