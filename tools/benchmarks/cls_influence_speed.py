"""Speed (and agreement) of influence scoring on an image classifier.

One run builds one mmpretrain CIFAR ResNet-18 and one set of random 32x32
images and measures, on them, in eval mode: plain batched inference
(``model.predict``, the yardstick), plain feature extraction, scoring with
θ = the last layer (closed form; batched autograd; per-image autograd
reference) and with θ = every conv and linear weight (batched OutputProbe
pass; per-image autograd reference), with the peak memory of every phase
and how far the batched scores are from the per-image ones. What each
phase computes: ``tools/benchmarks/scenarios/cls_influence_speed.py``.

Models (seeded random weights; the batch norms' statistics and the head's
final linear layer set from calibration images, so that the predictions
spread over the classes):
``--model resnet18`` (the default), the paper's CIFAR ResNet-18
(``configs/_base_/models/resnet18_cifar.py``), or with ``--small`` the
demo's 1/4-width one; ``--model mobilenet-v3-small``, ``vit-tiny`` or
``convnext-tiny``, the model of that classification demo
(``configs/isal_<model>_shapes-cls.py``; its model config under
``configs/_base_/models/``).

``--out`` writes every number as JSON: per phase ``seconds`` (the fastest
of ``--repeat`` runs), ``seconds_all``, ``peak_mib`` and ``start_mib``;
the ratios; the agreement checks; and the per-image scores
``∇θ l · S`` of every scoring phase (``S`` a random direction).

On a machine shared with other processes, ``--threads`` below the number
of cores keeps the timings stable (a busy core stalls every OpenMP
thread).

Example::

    python tools/benchmarks/cls_influence_speed.py --out cls_r18.json
    python tools/benchmarks/cls_influence_speed.py --small --threads 1
    python tools/benchmarks/cls_influence_speed.py --model vit-tiny \\
        --threads 1 --repeat 3
    python tools/benchmarks/cls_influence_speed.py --device cuda --amp \\
        --num-images 2048 --batch-size 256
"""
import argparse
from typing import Any, Dict, Optional, Sequence

from mmal.testing.benchmark import check_cli, print_and_dump
from mmal.utils import register_all_modules
from scenarios.cls_influence_speed import MODELS, ClsSpeedOptions, report, run


def options(args: argparse.Namespace) -> ClsSpeedOptions:
    """The benchmark's options from the command line's."""
    return ClsSpeedOptions(**{
        k: v
        for k, v in vars(args).items() if k != 'out'
    })


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        description='Speed of mmal influence scoring on an image classifier '
        '(the CIFAR ResNet-18 or a classification demo\'s model) against '
        'plain inference and per-image autograd.')
    p.add_argument(
        '--model',
        default='resnet18',
        choices=MODELS,
        help='the classifier: the CIFAR ResNet-18 (default) or the model '
        'of the MobileNetV3-Small, tiny ViT or tiny ConvNeXt demo')
    p.add_argument(
        '--small',
        action='store_true',
        help='the demo ResNet-18 at 1/4 width (128-d features) '
        'instead of the paper\'s CIFAR ResNet-18 (--model resnet18 only)')
    p.add_argument(
        '--num-images',
        type=int,
        default=256,
        help='images scored (default 256)')
    p.add_argument(
        '--batch-size',
        type=int,
        default=64,
        help='images per batch of the batched phases (default '
        '64)')
    p.add_argument(
        '--reference-images',
        type=int,
        default=None,
        help='images of the all-weights per-image reference (the '
        'first ones; its time is scaled to --num-images); '
        'default all')
    p.add_argument(
        '--repeat',
        type=int,
        default=1,
        help='run every timed phase this many times; the '
        'fastest run is reported')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument(
        '--amp',
        action='store_true',
        help='every phase under torch.autocast (float16; cuda '
        'only)')
    p.add_argument(
        '--float64',
        action='store_true',
        help='every phase in float64: the batched and per-image '
        'scores then agree to ~1e-15 where they compute the same '
        'thing')
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch threads (default: torch\'s, one per core)')
    p.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the weights, images and directions')
    p.add_argument('--out', default=None, help='write the numbers as JSON')
    args = p.parse_args(argv)
    check_cli(p, args, options)
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Parse the options, run, print the table, write the JSON."""
    args = parse_args(argv)
    register_all_modules()
    res = run(options(args))
    print_and_dump(args, res, report(res))
    return res


if __name__ == '__main__':
    main()
