"""Run pool-based active learning (ISAL and baselines) from a config.

    python tools/al_train.py configs/isal_fcos_voc.py [--work-dir DIR]
        [--data-root DIR] [--cfg-options key=value ...] [--resume]
        [--launcher {none,pytorch,slurm,mpi}]

Several processes: ``tools/dist_al_train.sh CONFIG GPUS [args]`` (torchrun
with ``--launcher pytorch``; gloo without GPUs).

Rerunning the same command on the same work dir continues after the last
finished step; ``--resume`` makes that explicit (it fails if there is
nothing to resume).

A mistake in the input (config values, data, work dir; a
:class:`mmal.utils.UserError`) ends with ``al_train.py: error: <message>``
on stderr and exit status 2, without a traceback; any other failure keeps
its traceback.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction

from mmal.engine import ActiveLearningRunner
from mmal.utils import MissingFileError, UserError, register_all_modules
from mmal.utils.distributed import LAUNCHERS, init_distributed
from mmal.utils.config_utils import override_data_root


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Active learning: train, select, repeat')
    parser.add_argument('config', help='config file with an al_cfg block')
    parser.add_argument('--work-dir', help='where state, logs and '
                        'checkpoints go (default ./work_dirs/<config name>)')
    parser.add_argument(
        '--data-root',
        help='move every dataset / evaluator path under the config\'s '
        'data_root to this folder')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='continue the run in the work dir (error if there is none); '
        'without it a rerun also continues when a state file exists')
    parser.add_argument(
        '--annotations',
        help='annotation mode: the COCO JSON export of the annotation tool '
        'that labels the selection waiting in the work dir (checked, then '
        'merged; the run continues)')
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='how the processes were started (tools/dist_al_train.sh passes '
        'pytorch)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. al_cfg.budget=100 '
        'data_root=/data/VOCdevkit/')
    return parser.parse_args()


def run(args: argparse.Namespace) -> None:
    """Load the config, apply the command line and run active learning."""
    if not osp.isfile(args.config):
        raise MissingFileError(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root:
        override_data_root(cfg, args.data_root)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif not cfg.get('work_dir'):
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    register_all_modules()
    init_distributed(args.launcher)
    ActiveLearningRunner(cfg, require_state=args.resume,
                         annotations=args.annotations).run()


def main() -> None:
    args = parse_args()
    try:
        run(args)
    except UserError as e:  # the input is wrong: the message says what
        print(f'al_train.py: error: {e}', file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    main()
