"""A model and a selection context on a config's data, without training:
what tests and benchmarks of the selection passes start from."""
import copy
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from torch import nn

from mmal.engine import ActiveLearningRunner
from mmal.registry import MODELS
from mmal.selectors import SelectionContext
from mmal.structures import PoolState
from mmal.utils.checkpoint import trusted_checkpoint_loading


@dataclass
class Scenario:
    """What :func:`selection_scenario` builds.

    Attributes:
        model (nn.Module): The model, eval mode, prepared by ``adapter``.
        adapter (BaseModelAdapter): Its adapter.
        context (SelectionContext): Cycle 0 of a pool whose first
            ``num_labeled`` images (seeded draw) are labeled.
        runner (ActiveLearningRunner): The driver that built the pool
            (generated demo data, resolved ``al_cfg``).
    """
    model: nn.Module
    adapter: Any
    context: SelectionContext
    runner: ActiveLearningRunner

    def __iter__(self):  # model, adapter, context = scenario
        return iter((self.model, self.adapter, self.context))


def selection_scenario(cfg: Config,
                       work_dir: str,
                       num_labeled: int,
                       adapter: Optional[Any] = None,
                       seed: int = 0,
                       init_seed: int = 0,
                       checkpoint: Optional[str] = None,
                       tweak: Optional[Callable[[nn.Module], None]] = None,
                       device: str = 'cpu',
                       num_workers: int = 0,
                       logger: Any = 'silent') -> Scenario:
    """The config's model and a cycle-0 selection context on its pool.

    Args:
        cfg (Config): An active-learning config (its demo data is generated
            into ``work_dir``).
        work_dir (str): The run's work dir.
        num_labeled (int): Images labeled at cycle 0 (drawn with seed 0).
        adapter (BaseModelAdapter, optional): Defaults to the config's
            ``al_cfg.adapter``.
        seed (int): The selection seed (the adapter's and the context's).
        init_seed (int): Seeds the model's initial weights.
        checkpoint (str, optional): Weights loaded after the
            initialisation.
        tweak (Callable, optional): ``tweak(model)`` under ``no_grad``
            after the weights (e.g. a zero classification bias, so that an
            untrained detector has predictions above its threshold).
        device (str): Where the model runs.
        num_workers (int): The context's data loading workers.
        logger: The context's logger (``'silent'``: no progress lines).

    Returns:
        Scenario
    """
    runner = ActiveLearningRunner(cfg, work_dir)
    adapter = runner.adapter if adapter is None else adapter
    if adapter is None:
        raise ValueError('selection_scenario needs an adapter: none given '
                         'and al_cfg.adapter is not set')
    model_cfg = copy.deepcopy(runner.cfg.model)
    if runner.cfg.get('data_preprocessor') is not None:  # as Runner does
        model_cfg.setdefault('data_preprocessor',
                             copy.deepcopy(runner.cfg.data_preprocessor))
    torch.manual_seed(init_seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    if checkpoint:
        with trusted_checkpoint_loading():
            load_checkpoint(model, checkpoint, map_location='cpu')
    if tweak is not None:
        with torch.no_grad():
            tweak(model)
    model.to(device).eval()
    adapter.prepare(model, seed=seed)
    pool = PoolState.initial(runner.pool_view.sample_ids, num_labeled, seed=0)
    context = SelectionContext(
        runner.cfg,
        pool,
        cycle=0,
        seed=seed,
        work_dir=runner.work_dir,
        task=runner.task,
        model=model,
        adapter=adapter,
        num_workers=num_workers,
        logger=logger)
    return Scenario(model, adapter, context, runner)


#: the heads whose output layers :func:`confident` looks at
HEADS = ('bbox_head', 'rpn_head', 'roi_head')


def confident(model: torch.nn.Module) -> List[str]:
    """Zero the biases of the heads' classification and objectness output
    layers, so that an untrained detector has predictions above the score
    threshold (and pseudo boxes).

    The layers are those of ``bbox_head``, ``rpn_head`` and ``roi_head``
    whose name (the last part that is not a level index) ends in ``_cls``
    or ``_obj`` and that are not inside a tower (``*convs``): FCOS's
    ``conv_cls``, RetinaNet's ``retina_cls``, ATSS's ``atss_cls``, GFL's
    ``gfl_cls``, RTMDet's ``rtm_cls.<level>``, YOLOX's
    ``multi_level_conv_cls.<level>`` and ``multi_level_conv_obj.<level>``,
    the RPN's ``rpn_cls`` and the RoI heads' ``fc_cls`` (mmdet initialises
    the last two with a zero bias already; a sigmoid head's focal-loss
    prior ``-log(99)`` becomes 0, a score of 0.5).

    Returns:
        list[str]: The names of the zeroed biases.
    """
    zeroed = []
    for head_name in HEADS:
        head = getattr(model, head_name, None)
        if head is None:
            continue
        for name, module in head.named_modules():
            parts = name.split('.')
            tail = parts[-2] if parts[-1].isdigit() and len(parts) > 1 \
                else parts[-1]
            if getattr(module, 'bias', None) is not None and \
                    tail.endswith(('_cls', '_obj')) and 'convs' not in name:
                module.bias.zero_()
                zeroed.append(f'{head_name}.{name}.bias')
    return zeroed
