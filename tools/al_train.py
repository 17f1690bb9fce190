"""Run pool-based active learning (ISAL and baselines) from a config.

    python tools/al_train.py configs/isal_fcos_voc.py [--work-dir DIR]
        [--data-root DIR] [--cfg-options key=value ...] [--resume]
        [--launcher {none,pytorch,slurm,mpi}]

An experiment (several configs, i.e. selectors, x seeds, one run after the
other into ``<work dir>/<config name>/seed_<k>/``):

    python tools/al_train.py configs/isal_fcos_voc.py \
        configs/random_fcos_voc.py --seeds 0 1 2 [--experiment NAME]

The work dir is then the experiment's folder (default
``./work_dirs/<NAME>``; NAME defaults to what the config names share,
``fcos_voc`` here). Rerunning it skips finished runs and resumes the
interrupted one. Report: ``tools/analysis_tools/al_report.py``.

Several processes: ``tools/dist_al_train.sh CONFIG GPUS [args]`` (torchrun
with ``--launcher pytorch``; gloo without GPUs); more configs of an
experiment go among the args: ``tools/dist_al_train.sh
configs/isal_fcos_voc.py 8 configs/random_fcos_voc.py --seeds 0 1 2``.

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
from mmal.engine.al_experiment import (Experiment, PlannedRun,
                                       default_experiment_name, plan_runs)
from mmal.utils import (ConfigError, MissingFileError, UserError,
                        register_all_modules)
from mmal.utils.config_utils import override_data_root
from mmal.utils.distributed import (LAUNCHERS, close_distributed,
                                    init_distributed)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Active learning: train, select, repeat')
    parser.add_argument(
        'configs',
        nargs='+',
        metavar='CONFIG',
        help='config file with an al_cfg block; several: an experiment '
        'comparing them (e.g. one per selector)')
    parser.add_argument(
        '--seeds',
        nargs='+',
        type=int,
        help='experiment: run every config with each of these seeds '
        '(al_cfg.seed), into <work dir>/<config name>/seed_<k>/')
    parser.add_argument(
        '--experiment',
        help='experiment name: the default work dir is ./work_dirs/<name> '
        '(default: what the config names share, e.g. fcos_voc)')
    parser.add_argument(
        '--work-dir',
        help='where state, logs and '
        'checkpoints go (default ./work_dirs/<config name>); '
        'for an experiment, its folder')
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
    # intermixed: tools/dist_al_train.sh puts --launcher after the first
    # config, before the experiment's other configs
    return parser.parse_intermixed_args()


def load_cfg(args: argparse.Namespace, config: str) -> Config:
    """``config`` with the command line's options applied."""
    if not osp.isfile(config):
        raise MissingFileError(f'config file not found: {config}')
    cfg = Config.fromfile(config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root:
        override_data_root(cfg, args.data_root)
    return cfg


def run_experiment(args: argparse.Namespace) -> None:
    """Every config with every seed (see the module docstring)."""
    if args.annotations:
        raise ConfigError('--annotations answers one run\'s export: give it '
                          'one config and its --work-dir, not an experiment')
    for config in args.configs:
        if not osp.isfile(config):
            raise MissingFileError(f'config file not found: {config}')
    name = args.experiment or default_experiment_name(args.configs)
    root = args.work_dir or osp.join('./work_dirs', name)
    seeds = args.seeds
    if seeds is None:  # the configs' own seed (they must agree)
        seeds = sorted({
            int((load_cfg(args, c).get('al_cfg') or {}).get('seed', 0))
            for c in args.configs
        })
        if len(seeds) > 1:
            raise ConfigError(
                f'the configs set different al_cfg.seed values {seeds}: '
                'give the experiment\'s seeds with --seeds')

    def run_cfg(run: PlannedRun) -> Config:
        cfg = load_cfg(args, run.config)
        if cfg.get('al_cfg') is not None:
            cfg.al_cfg.seed = run.seed
        cfg.work_dir = run.work_dir
        return cfg

    register_all_modules()
    init_distributed(args.launcher)
    Experiment(
        plan_runs(args.configs, seeds, root),
        root,
        run_cfg,
        require_state=args.resume).run()


def run(args: argparse.Namespace) -> None:
    """Load the config, apply the command line and run active learning."""
    if len(args.configs) > 1 or args.seeds is not None or args.experiment:
        run_experiment(args)
        return
    config = args.configs[0]
    cfg = load_cfg(args, config)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif not cfg.get('work_dir'):
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    register_all_modules()
    init_distributed(args.launcher)
    ActiveLearningRunner(
        cfg, require_state=args.resume, annotations=args.annotations).run()


def main() -> None:
    args = parse_args()
    try:
        run(args)
    except UserError as e:  # the input is wrong: the message says what
        print(f'al_train.py: error: {e}', file=sys.stderr)
        close_distributed()
        sys.exit(2)


if __name__ == '__main__':
    main()
