"""How much float rounding moves ISAL scores and selections: batch sizes.

On a finished cycle of an mmal work dir, compute the reference gradient and
s_test once, then score the unlabeled pool (as it was before that cycle's
selection) with the per-image path and with the fast path at several batch
sizes, and compare the scores and the selections. With ``--float64`` the
same in float64 (``adapter.float64``), which tells rounding apart from a
real difference between the paths. The measurement itself:
``tools/benchmarks/scenarios/score_rounding.py``.

    python tools/al_train.py configs/isal_faster-rcnn_shapes.py \\
        --work-dir work_dirs/frcnn_round --cfg-options al_cfg.num_cycles=1
    python tools/benchmarks/score_rounding.py \\
        configs/isal_faster-rcnn_shapes.py work_dirs/frcnn_round
    python tools/benchmarks/score_rounding.py \\
        configs/isal_faster-rcnn_shapes.py work_dirs/frcnn_round --float64
"""
import argparse
import json

from mmal.utils import register_all_modules
from scenarios.score_rounding import score_rounding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('work_dir', help='a work dir with a trained cycle')
    parser.add_argument('--cycle', type=int, default=0)
    parser.add_argument(
        '--batch-sizes', type=int, nargs='+', default=[1, 3, 8])
    parser.add_argument('--float64', action='store_true')
    parser.add_argument('--out', help='write the figures to this JSON file')
    args = parser.parse_args()
    register_all_modules()
    out = score_rounding(
        args.config,
        args.work_dir,
        cycle=args.cycle,
        batch_sizes=args.batch_sizes,
        float64=args.float64)
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
