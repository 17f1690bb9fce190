"""Speed (and agreement) of mmal's influence computations on one model.

One run builds one detector and one set of images and measures, on them,
plain batched inference, mmal's fast and per-image scoring, official-style
scoring, and s_test by mmal's fast LiSSA and by the official recursion,
with the peak memory of every phase and how far the paths' numbers are
apart. What each phase computes:
``tools/benchmarks/scenarios/influence_speed.py``.

Models (random weights unless ``--checkpoint``; the biases of the heads'
classification and objectness output layers are zeroed so that untrained
predictions reach the score threshold): the demo's small FCOS on generated
128x128 shapes; with ``--config`` the model of any detection ISAL config
with demo data (single-stage or two-stage: ``configs/isal_<model>_shapes.py``;
the adapter from ``al_cfg.adapter`` or the model's type, θ by rule where
the adapter has no paper setting, LiSSA's scales from the selector's scale
check where neither config nor adapter gives them); or with ``--r50`` the
paper's FCOS R-50 caffe FPN GN-head on generated 320x320 shapes; or with
``--standard`` (with or without ``--config``) the family's standard-size
model on generated 320x320 shapes, chosen by the config's model type: FCOS
R-50 as ``--r50``, and the model of mmdet's own config for the others
(``retinanet_r50_fpn_1x_coco``, ``atss_r50_fpn_1x_coco``,
``gfl_r50_fpn_1x_coco``, ``rtmdet_tiny_8xb32-300e_coco`` with its CSPNeXt
backbone, ``yolox_tiny_8xb8-300e_coco``, ``faster-rcnn_r50_fpn_1x_coco``,
``cascade-rcnn_r50_fpn_1x_coco``), with the demo's classes and a randomly
initialised backbone (no download); the adapter, θ by rule and the scale
check as with ``--config``. The pool
is ``2 * --num-images`` generated images: ``--num-images`` labeled
(s_test) and ``--num-images`` unlabeled (scoring).

``--out`` writes every number as JSON: per phase ``seconds`` (the fastest
of ``--repeat`` runs), ``seconds_all``, ``peak_mib`` and ``start_mib``;
the ratios; the agreement checks; the s_test details; and the per-image
values ``∇θ l · s_test`` of the three scoring paths (the selector's
influence is their negative).

Example::

    python tools/benchmarks/influence_speed.py --out fcos_small.json
    python tools/benchmarks/influence_speed.py --r50 --out fcos_r50.json
    python tools/benchmarks/influence_speed.py --standard \
        --config configs/isal_retinanet_shapes.py --batch-size 4 --repeat 2
    python tools/benchmarks/influence_speed.py \
        --config configs/isal_retinanet_shapes.py --num-images 16
"""
import argparse
import json
import os.path as osp
import shutil
import tempfile
from typing import Any, Dict, Optional, Sequence

import torch

from mmal.utils import register_all_modules
from scenarios.influence_speed import SpeedOptions, report, run

CONFIGS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        description='Speed of mmal influence scoring and s_test against '
        'plain inference and the official-style computation.')
    p.add_argument(
        '--config',
        default=None,
        help='a detection ISAL config with demo data whose model is '
        'measured, e.g. configs/isal_retinanet_shapes.py (a path, or a '
        'name in configs/); default: the FCOS demo, '
        'configs/isal_fcos_shapes.py')
    p.add_argument(
        '--r50',
        action='store_true',
        help='FCOS R-50 (paper) at 320x320 instead of the small '
        'demo FCOS at 128x128 (not with --config)')
    p.add_argument(
        '--standard',
        action='store_true',
        help='the family\'s standard-size model at 320x320 instead of '
        'the config\'s demo model at 128x128, chosen by the config\'s '
        'model type: FCOS R-50 (as --r50), mmdet\'s RetinaNet, ATSS, GFL '
        'R-50 FPN, RTMDet-tiny, YOLOX-tiny, Faster R-CNN and Cascade '
        'R-CNN R-50 FPN (the demo\'s classes, random init); other types '
        'are refused')
    p.add_argument(
        '--num-images',
        type=int,
        default=None,
        help='unlabeled images scored, and labeled images for '
        's_test (default 32; 8 with --r50 or --standard)')
    p.add_argument(
        '--batch-size',
        type=int,
        default=8,
        help='images per batch of plain inference and of the '
        'fast paths')
    p.add_argument('--chains', type=int, default=4, help='LiSSA chains')
    p.add_argument(
        '--repeat',
        type=int,
        default=1,
        help='run every timed phase this many times; the '
        'fastest run is reported')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch threads (default: torch\'s, one per core); on a '
        'machine shared with other processes 1 gives steadier times')
    p.add_argument(
        '--score-thr',
        type=float,
        default=0.1,
        help='pseudo-label score threshold')
    p.add_argument(
        '--scale',
        type=float,
        nargs='+',
        default=None,
        help='LiSSA scale per block (default: the config\'s '
        'selector scale, else the adapter\'s (FCOS [100, 8000, '
        '5000]; always the adapter\'s for --r50 and --standard), '
        'else the '
        'selector\'s scale check)')
    p.add_argument(
        '--no-scale-check',
        action='store_true',
        help='when the fast LiSSA chain diverges with the '
        'configured scales, report it and stop there; by default '
        'the scales are then raised by mmal\'s scale check '
        '(power iteration on the labeled images) and s_test is '
        'run again')
    p.add_argument(
        '--checkpoint',
        default=None,
        help='trained weights (mmengine checkpoint) instead of '
        'random weights with zero classification / objectness '
        'biases')
    p.add_argument('--out', default=None, help='write the numbers as JSON')
    p.add_argument(
        '--keep-work-dir',
        action='store_true',
        help='do not delete the temporary work dir (data)')
    args = p.parse_args(argv)
    if args.num_images is None:
        args.num_images = 8 if args.r50 or args.standard else 32
    if args.num_images < 1 or args.batch_size < 1 or args.chains < 1 or \
            args.repeat < 1 or (args.threads is not None
                                and args.threads < 1):
        p.error('--num-images, --batch-size, --chains, --repeat and '
                '--threads must be >= 1')
    if args.r50 and args.config is not None and \
            osp.basename(args.config) != 'isal_fcos_shapes.py':
        p.error('--r50 replaces the FCOS demo\'s model: not with --config')
    if args.r50 and args.standard:
        p.error('--r50 and --standard: give one (--standard with the FCOS '
                'demo is --r50)')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device')
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Parse the options, run, print the table, write the JSON."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    register_all_modules('mmdet')
    work_dir = tempfile.mkdtemp(prefix='mmal_influence_speed_')
    try:
        res = run(SpeedOptions.from_args(args), work_dir, CONFIGS)
    finally:
        if not args.keep_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    print(report(res))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(args=vars(args), **res), f, indent=1)
        print(f'wrote {args.out}')
    return res


if __name__ == '__main__':
    main()
