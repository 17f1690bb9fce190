"""One selection step, the same for the driver, annotation mode and
:class:`~mmal.engine.SelectionHook`: the selector's context, the ranking
and its checks, the budget, the record every rank agrees on, its file and
its time.

Every process ranks its share; rank 0's record is broadcast (so every rank
labels the same ids) and rank 0 writes it, atomically.
"""
import os.path as osp
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from mmengine.config import Config
from torch import nn

from mmal.selectors import BaseSelector, SelectionContext
from mmal.structures import PoolState
from mmal.tasks import BaseTask
from mmal.utils.distributed import broadcast_from_master, is_master, sync
from mmal.utils.errors import ConfigError
from mmal.utils.fileio import atomic_write_json, read_json


def take_budget(ranking: Sequence[str],
                budget: int,
                cost_budget: Optional[int] = None,
                cost_of: Optional[Callable[[str], int]] = None) -> List[str]:
    """The head of ``ranking`` within the image (and cost) budget.

    A cost budget (boxes, ``al_cfg.cost_budget``) is spent as an annotator
    would spend it: the box count of an unlabeled image is only known once
    it is labeled, so images are labeled in rank order until
    ``cost_budget`` is used up, the image that crosses it included (and at
    most ``budget`` images). A non-empty ranking therefore always gives at
    least one image.

    Args:
        ranking (Sequence[str]): Candidate ids, best first.
        budget (int): Maximum number of images.
        cost_budget (int, optional): Cost to spend; labeling stops once
            the selected images cost at least this much.
        cost_of (Callable, optional): Annotation cost of one id, known
            after it is labeled; needed with ``cost_budget``.

    Returns:
        list[str]: Selected ids, in rank order.
    """
    if cost_budget is None:
        return list(ranking[:budget])
    selected, spent = [], 0
    for sid in ranking:
        if len(selected) >= budget or spent >= cost_budget:
            break
        selected.append(sid)
        spent += cost_of(sid)
    return selected


@dataclass
class Selection:
    """What one selection step decided.

    Attributes:
        record (dict): What ``selection.json`` holds: ``cycle``,
            ``selector``, ``selected`` (ids, rank order), ``scores``,
            ``info``.
        seconds (float, optional): Wall time of the step (model loading,
            ranking, budget); None for a record made by an earlier process.
        context (SelectionContext, optional): The context it ranked with
            (its views are reused by an export); None when reused.
    """
    record: Dict[str, Any]
    seconds: Optional[float] = None
    context: Optional[SelectionContext] = None

    @property
    def selected(self) -> List[str]:
        return list(self.record['selected'])


class SelectionStep:
    """The selector of a run, with what every selection of the run shares.

    Args:
        cfg (Config): The run's config (the pool, val and test datasets
            and the test pipeline the context's views use).
        selector (BaseSelector): The query strategy.
        task (BaseTask): The run's task.
        adapter (BaseModelAdapter, optional): The model adapter; needed by
            selectors with ``needs_model``.
        num_workers (int): Data loading workers of the selection passes.
        annotation_policy (str): ``'error'`` or ``'drop'`` (corrupt boxes).
        logger: mmengine logger (or its name) for progress lines.
        exclude_ids (dict, optional): Split -> ids left out of its views
            (images that cannot be decoded).
        unlabeled_subset (int, optional): Rank only this many unlabeled
            images (``al_cfg.unlabeled_subset``).
        cost_budget (int, optional): The most annotation cost a selection
            adds (``al_cfg.cost_budget``); needs ``cost_of`` in :meth:`run`.
    """

    def __init__(self,
                 cfg: Config,
                 selector: BaseSelector,
                 task: BaseTask,
                 adapter: Optional[Any] = None,
                 num_workers: int = 2,
                 annotation_policy: str = 'error',
                 logger: Any = 'current',
                 exclude_ids: Optional[Dict[str, Sequence[str]]] = None,
                 unlabeled_subset: Optional[int] = None,
                 cost_budget: Optional[int] = None) -> None:
        self.cfg = cfg
        self.selector = selector
        self.task = task
        self.adapter = adapter
        self.num_workers = num_workers
        self.annotation_policy = annotation_policy
        self.logger = logger
        self.exclude_ids = exclude_ids
        self.unlabeled_subset = unlabeled_subset
        self.cost_budget = cost_budget

    @property
    def name(self) -> str:
        return type(self.selector).__name__

    def context(self,
                pool: PoolState,
                cycle: int,
                seed: int,
                work_dir: str,
                model: Optional[nn.Module] = None,
                budget: Optional[int] = None,
                whole_pool: bool = False) -> SelectionContext:
        """The selector's inputs for one cycle.

        ``whole_pool``: every unlabeled image, whatever
        ``unlabeled_subset`` (what an export of a selection predicts on:
        the selected images are unlabeled, not necessarily in a subset
        drawn with another seed).
        """
        return SelectionContext(
            self.cfg,
            pool,
            cycle,
            seed=seed,
            work_dir=work_dir,
            task=self.task,
            model=model,
            adapter=self.adapter,
            num_workers=self.num_workers,
            annotation_policy=self.annotation_policy,
            logger=self.logger,
            exclude_ids=self.exclude_ids,
            budget=budget,
            unlabeled_subset=None if whole_pool else self.unlabeled_subset)

    def run(self,
            pool: PoolState,
            cycle: int,
            seed: int,
            work_dir: str,
            budget: int,
            model: Optional[nn.Module] = None,
            load_model: Optional[Callable[[], nn.Module]] = None,
            cost_of: Optional[Callable[[str], int]] = None,
            record_file: Optional[str] = None) -> Selection:
        """Select up to ``budget`` unlabeled images of ``pool``.

        With ``record_file`` an existing record is reused (a process that
        selected and crashed before recording it), and a new one is written
        there by rank 0.

        Args:
            pool (PoolState): Labeled / unlabeled ids (not changed).
            cycle (int): The cycle whose model selects.
            seed (int): Seed of the selection.
            work_dir (str): The cycle's directory, for artifacts.
            budget (int): The most images to select.
            model (nn.Module, optional): The model, eval mode, already
                through ``adapter.prepare``.
            load_model (Callable, optional): Loads the model (eval mode)
                when ``model`` is None and the selector needs one; the step
                prepares it with ``seed``.
            cost_of (Callable, optional): Annotation cost of one id (with
                ``cost_budget``).
            record_file (str, optional): Where the record is kept
                (``selection.json``).

        Returns:
            Selection
        """
        unlabeled = set(pool.unlabeled_ids)
        if record_file is not None and broadcast_from_master(
                osp.isfile(record_file)):
            record = read_json(record_file)
            self._check_ids(record['selected'], unlabeled, record_file)
            self._log(f'cycle {cycle}: reusing the selection in '
                      f'{record_file}')
            return Selection(record)
        start = time.perf_counter()
        if budget > len(unlabeled):
            self._log(f'cycle {cycle}: budget {budget} > {len(unlabeled)} '
                      'unlabeled images: taking them all')
        if model is None and self.selector.needs_model:
            model = self.adapter.prepare(load_model(), seed=seed)
        context = self.context(pool, cycle, seed, work_dir, model, budget)
        if len(context.unlabeled_ids) < min(budget, len(unlabeled)):
            raise ConfigError(
                f'al_cfg.unlabeled_subset ({self.unlabeled_subset}) is '
                f'smaller than the budget ({budget} images) at cycle {cycle}')
        result = self.selector.rank(context)
        ranking = list(result.ranking)
        if len(set(ranking)) != len(ranking) or not set(ranking) <= unlabeled:
            raise ValueError(f'{self.name} returned a ranking with duplicate '
                             'or non-unlabeled ids')
        if not ranking and unlabeled:
            raise ValueError(
                f'{self.name} (al_cfg.selector) returned an empty ranking for '
                f'{len(unlabeled)} unlabeled images at cycle {cycle}: a '
                'selection from a non-empty pool cannot be empty')
        selected = take_budget(ranking, budget, self.cost_budget, cost_of)
        # made once: rank 0's selection is the one every rank labels
        record = broadcast_from_master(
            dict(
                cycle=cycle,
                selector=self.name,
                selected=selected,
                scores=result.scores,
                info=result.info))
        if record_file is not None:
            if is_master():
                atomic_write_json(record_file, record)
            sync()
        seconds = broadcast_from_master(time.perf_counter() - start)
        return Selection(record, seconds, context)

    @staticmethod
    def _check_ids(selected: Sequence[str], unlabeled: set,
                   source: str) -> None:
        bad = [i for i in selected if i not in unlabeled]
        if bad:
            raise ValueError(f'{source} selects ids that are not unlabeled: '
                             f'{bad[:10]}')

    def _log(self, msg: str) -> None:
        from mmengine.logging import print_log
        print_log(msg, logger=self.logger)
