"""Speed of the baseline selectors' pool passes against plain inference.

One run builds one model from a shapes demo config (seeded random weights)
and one set of generated images and measures, on the same unlabeled
images, with the same batch size, device and loader workers: plain
batched inference (a standard ``DataLoader`` and ``model.test_step``, what
``tools/test.py`` does), ``EntropySelector.entropies`` (target: <= 1.1x
plain) and ``CoresetSelector.features(context, labeled=False)`` (core-set's
feature pass, target: <= 1.2x plain; its k-center greedy is benchmarked
by ``tools/benchmarks/kcenter_speed.py``); for a detector also
``LocalizationStabilitySelector.stabilities`` (no target: 1 clean + 6 noisy
inferences per image, ~7x plain by construction); and
``LearningLossSelector.predicted_losses`` with the model wrapped in learning
loss's module (target: <= 1.1x plain), plus the training overhead of that
module per iteration (``train_step`` of the wrapped vs the plain model on
one batch; no target, the ratio is reported). Each phase's time is the
fastest of ``--repeat`` interleaved rounds after a warm-up. What each
phase computes: ``tools/benchmarks/scenarios/selector_speed.py``.

Models: the ``--config``'s (a shapes demo config: the small FCOS, the
small Faster R-CNN, the classification demo's 1/4-width ResNet-18), or
with ``--model-config`` another config's model on the demo's data (e.g.
the paper's FCOS R-50 of ``configs/isal_fcos_voc.py``, no pretrained
weights). A detector's ``conv_cls`` bias is zeroed so that the untrained
model predicts boxes (the report gives how many per image).

``--out`` writes every number as JSON: per phase ``seconds``,
``seconds_all``, ``warmup_s``, ``images_per_s``, ``peak_mib`` and
``start_mib``; the ratios to plain inference and whether the targets are
met; the entropy of every image; the images with a reference box of the
stability pass.

On a machine shared with other processes, ``--threads`` below the number
of cores keeps the timings stable (a busy core stalls every OpenMP
thread).

``--ppal-diversity N`` measures instead PPAL's diversity stage on N
synthetic candidate images (no model): the CCMS distance matrix
(``mmal.selectors.ccms.ccms_distances``), farthest-first seeding and
k-medoids (``mmal.selectors.k_medoids``) for a budget of N // 2, time and
peak memory per phase (``--ppal-boxes``, ``--ppal-classes``,
``--ppal-valid``, ``--ppal-dim`` size the detections).

Example::

    python tools/benchmarks/selector_speed.py --threads 2 --out fcos.json
    python tools/benchmarks/selector_speed.py \\
        --config configs/isal_faster-rcnn_shapes.py --threads 2
    python tools/benchmarks/selector_speed.py \\
        --config configs/isal_resnet18-small_shapes-cls.py --img-size 128
    python tools/benchmarks/selector_speed.py \\
        --model-config configs/isal_fcos_voc.py --img-size 512 \\
        --num-images 40
    python tools/benchmarks/selector_speed.py --device cuda --amp \\
        --num-images 2000 --batch-size 32
    python tools/benchmarks/selector_speed.py --ppal-diversity 9464 \\
        --threads 2
"""
import argparse
import shutil
import tempfile
from typing import Any, Dict, Optional, Sequence

from mmal.testing.benchmark import check_cli, print_and_dump
from mmal.utils import register_all_modules
from scenarios.selector_speed import (DEFAULT_CONFIG, SelectorSpeedOptions,
                                      report, run)


def options(args: argparse.Namespace) -> SelectorSpeedOptions:
    """The benchmark's options from the command line's."""
    return SelectorSpeedOptions(**{
        k: v
        for k, v in vars(args).items() if k not in ('out', 'keep_work_dir')
    })


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        description='Speed of the entropy, core-set, learning loss and '
        '(detectors) localization stability pool passes against plain '
        'batched inference on the same images; learning loss\'s training '
        'overhead per iteration.')
    p.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='a shapes demo config (default %(default)s)')
    p.add_argument(
        '--model-config',
        default=None,
        help='take the model and adapter of this config instead '
        '(e.g. configs/isal_fcos_voc.py), on the demo data')
    p.add_argument(
        '--num-images',
        type=int,
        default=200,
        help='unlabeled images (default 200)')
    p.add_argument(
        '--batch-size',
        type=int,
        default=8,
        help='images per batch of every phase (default 8)')
    p.add_argument(
        '--img-size',
        type=int,
        default=None,
        help='side of the generated images (default: the '
        'config\'s demo_data.img_size)')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument(
        '--amp',
        action='store_true',
        help='every phase under torch.autocast (float16; cuda '
        'only)')
    p.add_argument(
        '--repeat',
        type=int,
        default=3,
        help='timed rounds after the warm-up; the fastest is '
        'reported (default 3)')
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch threads (default: torch\'s, one per core)')
    p.add_argument(
        '--num-workers',
        type=int,
        default=0,
        help='data loading workers of every phase (default 0)')
    p.add_argument(
        '--seed', type=int, default=0, help='seed of the model weights')
    p.add_argument(
        '--ppal-diversity',
        type=int,
        default=None,
        metavar='N',
        help='time PPAL\'s diversity stage (CCMS distances, farthest-first, '
        'k-medoids, budget N // 2) on N synthetic candidate images instead '
        'of the pool passes')
    p.add_argument(
        '--ppal-boxes',
        type=int,
        default=100,
        help='detections per image (default 100)')
    p.add_argument(
        '--ppal-classes',
        type=int,
        default=80,
        help='classes of the detections (default 80)')
    p.add_argument(
        '--ppal-valid',
        type=float,
        default=0.3,
        help='expected share of the scores above 0.05 (default 0.3)')
    p.add_argument(
        '--ppal-dim',
        type=int,
        default=256,
        help='feature dimension (default 256)')
    p.add_argument('--out', default=None, help='write the numbers as JSON')
    p.add_argument(
        '--keep-work-dir',
        action='store_true',
        help='do not delete the temporary work dir (data)')
    args = p.parse_args(argv)
    check_cli(p, args, options)
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Parse the options, run, print the table, write the JSON."""
    args = parse_args(argv)
    register_all_modules()
    work_dir = tempfile.mkdtemp(prefix='mmal_selector_speed_')
    try:
        res = run(options(args), work_dir)
    finally:
        if not args.keep_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    print_and_dump(args, res, report(res))
    return res


if __name__ == '__main__':
    main()
