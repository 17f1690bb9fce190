"""ISAL: Influence Selection for Active Learning (Liu et al., ICCV 2021)."""
import inspect
import time
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log

from mmal.datasets import PoolSubsetDataset
from mmal.influence import DampedSolver, LiSSA, ScaleCheck, flat_dot, loss_grad
from mmal.registry import INFLUENCE_SOLVERS, SELECTORS
from mmal.utils.distributed import as_float64_sum, gather_or_raise, shard
from mmal.utils.progress import track_progress
from .base import BaseSelector, SelectionResult
from .labeled_hessian import LabeledHessian
from .score_order import check_unscored_policy, order_by_score
from .selection_context import SelectionContext

REFERENCE_SETS = ('val', 'labeled')


@SELECTORS.register_module()
class InfluenceSelector(BaseSelector):
    """Rank unlabeled images by their expected influence on a reference set.

    For an unlabeled image ``z'`` with pseudo labels (the model's own
    predictions with score >= ``score_thr``) and per-image gradient ``G_z'``
    w.r.t. the adapter's parameters θ::

        I(z') = - s_test . G_z',   s_test = H^-1 v,   v = sum_{z in R} ∇θ l(z)

    where ``H`` is the Hessian of the labeled loss (estimated by ``solver``)
    and ``R`` the reference set. Images are ranked by ``I`` ascending (most
    negative first), as in the official code.

    Args:
        score_thr (float): Pseudo-label score threshold. Defaults to 0.1
            (official run script).
        reference (str): ``'val'`` (official) or ``'labeled'``.
        reference_max_images (int, optional): Use a seeded random subset of
            at most this many reference images. Defaults to all.
        solver (dict): Config of the s_test solver. ``scale=None`` takes the
            adapter's per-block default (FCOS ``[100, 8000, 5000]``).
        unscored (str): Images with no pseudo box have no gradient.
            ``'random'`` (official): ranked after every scored image, in
            seeded random order, so they are only picked when too few images
            were scored. ``'exclude'``: never picked.
        scale_check (dict, optional): How LiSSA's scales are chosen
            (:class:`~mmal.influence.ScaleCheck`): before the chains, the
            dominant Hessian eigenvalue of each block is measured on
            ``num_images`` labeled images (power iteration, ``iters`` HVPs
            each). ``mode='auto'`` (default): per block
            ``max(configured, margin * |λ|)``, and a diverged chain raises
            its blocks' scales ``growth``-fold and reruns every chain, at
            most ``max_retries`` times. ``mode='fixed'``: the configured
            scales (the paper's), with a warning for each block that would
            diverge. ``None``: no check, fixed scales. Defaults to
            ``dict()``: ``num_images=4, iters=20, mode='auto', margin=1.5,
            growth=2.0, max_retries=3``.
        fast_path (bool): Batched scoring as directional derivatives
            (a backward to the θ layers' outputs only) fused with
            inference, and HVPs from cached head
            inputs (see :meth:`score` and :class:`LabeledHessian`). False
            runs the per-image reference path (trunk once per image, a
            backward per score). Both give the same numbers up to float
            rounding. Defaults to True.
        batch_size (int): Images per batch on the fast path (images of the
            same padded shape only). Defaults to 8.
        cache_mb (float): Budget of the fast path's cache of labeled images'
            head inputs, in MiB. Defaults to 2048.
    """

    def __init__(self,
                 score_thr: float = 0.1,
                 reference: str = 'val',
                 reference_max_images: Optional[int] = None,
                 solver: Optional[dict] = None,
                 unscored: str = 'random',
                 scale_check: Optional[dict] = dict(),
                 fast_path: bool = True,
                 batch_size: int = 8,
                 cache_mb: float = 2048) -> None:
        if reference not in REFERENCE_SETS:
            raise ValueError(f'reference must be one of {REFERENCE_SETS}, '
                             f'got {reference!r}')
        self.score_thr = float(score_thr)
        self.reference = reference
        self.reference_max_images = reference_max_images
        self.solver_cfg = dict(solver or dict(type='mmal.LiSSA'))
        self.unscored = check_unscored_policy(unscored)
        self.scale_check = (None if scale_check is None else
                            self._scale_check(scale_check))
        if int(batch_size) < 1 or cache_mb < 0:
            raise ValueError('batch_size must be >= 1 and cache_mb >= 0, got '
                             f'{batch_size}, {cache_mb}')
        self.fast_path = bool(fast_path)
        self.batch_size = int(batch_size)
        self.cache_mb = float(cache_mb)
        self.last_scale_report: Optional[dict] = None
        self.last_lissa_scales: Optional[dict] = None
        self.last_cache_stats: List[dict] = []
        self.last_solver: dict = {}

    @staticmethod
    def _scale_check(cfg: dict) -> ScaleCheck:
        known = set(inspect.signature(ScaleCheck).parameters)
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f'unknown scale_check keys {unknown}; known: '
                             f'{sorted(known)}')
        return ScaleCheck(**cfg)

    # -- the three passes ---------------------------------------------------
    # Each pass is sharded over the processes (``shard``: every
    # world_size-th id, no padding) and combined in a fixed order, so the
    # result does not depend on the number of processes.
    def reference_gradient(
            self, context: SelectionContext,
            params: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """``v``: sum of per-image loss gradients over the reference set."""
        view = (
            context.validation_view()
            if self.reference == 'val' else context.labeled_view())
        ids = list(view.sample_ids)
        if self.reference_max_images and len(ids) > self.reference_max_images:
            rng = np.random.default_rng([context.seed, 1])
            pick = rng.choice(
                len(ids), self.reference_max_images, replace=False)
            ids = sorted(ids[i] for i in pick)

        def partial_sum():  # float64: the same sum however it is split
            mine = shard(ids)
            acc = [torch.zeros_like(p, dtype=torch.float64) for p in params]
            for grads in track_progress(
                    self._gt_grads(context, view, mine, params), len(mine),
                    f'reference gradient ({self.reference})', context.logger):
                acc = [a + g.detach().double() for a, g in zip(acc, grads)]
            return [a.cpu() for a in acc]

        return as_float64_sum(
            gather_or_raise(partial_sum, 'reference gradient'), params)

    def build_solver(self, context: SelectionContext) -> DampedSolver:
        cfg = dict(self.solver_cfg)
        if cfg.get('scale') is None and context.adapter.lissa_scale:
            cfg['scale'] = list(context.adapter.lissa_scale)
        return INFLUENCE_SOLVERS.build(cfg)

    def _gt_grads(
            self, context: SelectionContext, view: PoolSubsetDataset,
            ids: Sequence[str],
            params: Sequence[torch.Tensor]) -> Iterator[List[torch.Tensor]]:
        """The ground-truth loss gradient of each image of ``ids`` (any
        order)."""
        adapter, model = context.adapter, context.model
        loader = context.loader(view, ids)
        if not self.fast_path:
            for batch in loader:
                yield loss_grad(adapter.gt_loss(model, batch), params)
            return
        for entry in context.cache_entries(loader, self.batch_size):
            yield adapter.cached_gt_grad(model, entry, params)

    def hessian(self, context: SelectionContext,
                params: Sequence[torch.Tensor]) -> LabeledHessian:
        """The labeled set's Hessians, on this selector's path."""
        return LabeledHessian(
            context,
            params,
            fast=self.fast_path,
            batch_size=self.batch_size,
            cache_bytes=self.cache_mb * 2**20)

    def s_test(self, context: SelectionContext, params: Sequence[torch.Tensor],
               v: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """``H^-1 v`` on the labeled images, by the configured solver.

        LiSSA runs under the scale check (:class:`ScaleCheck`; ``None``:
        the configured scales, no measurement, no retry); the other solvers
        do not iterate with the scales and use them as configured.
        """
        solver = self.build_solver(context)
        problem = self.hessian(context, params)
        self.last_scale_report = self.last_lissa_scales = None
        if isinstance(solver, LiSSA):
            check = self.scale_check or ScaleCheck(mode='fixed', num_images=0)
            s, self.last_scale_report, self.last_lissa_scales = (
                check.estimate(solver, v, problem))
        else:
            s = solver.estimate(v, problem)
        self.last_cache_stats = problem.cache_stats
        self.last_solver = dict(
            name=type(solver).__name__, **getattr(solver, 'info', {}))
        return s

    def score(self, context: SelectionContext, params: Sequence[torch.Tensor],
              s_test: Sequence[torch.Tensor]) -> Dict[str, Optional[float]]:
        """Influence ``-s_test · G_z'`` of each unlabeled image.

        Fast path: images of equal padded shape are batched; one pass
        gives the predictions (pseudo labels) and each image's loss
        derivative along ``s_test``, from a backward to the θ layers'
        outputs only (:meth:`BaseModelAdapter.directional_scores`).
        Reference path: per image, the pseudo-label loss and its gradient by
        backward.

        Returns:
            dict: id -> influence (None: no pseudo box).
        """
        view = context.unlabeled_view()
        adapter, model = context.adapter, context.model

        def per_image(loader):
            for batch in loader:
                loss, _ = adapter.pseudo_loss(model, batch, self.score_thr)
                yield batch['sample_id'][0], (None if loss is None else float(
                    flat_dot(s_test, loss_grad(loss, params))))

        def batched(loader):
            for data in context.shape_batches(loader, self.batch_size):
                found = adapter.directional_scores(model, data, s_test,
                                                   self.score_thr)
                for sid, (value, _) in zip(data['sample_id'], found):
                    yield sid, value

        def my_scores():
            mine = shard(list(view.sample_ids))
            loader = context.loader(view, mine)
            scores: Dict[str, Optional[float]] = {}
            for sid, value in track_progress(
                (batched if self.fast_path else per_image)(loader), len(mine),
                    'scoring unlabeled images', context.logger):
                scores[sid] = None if value is None else -value
            return scores

        merged: Dict[str, Optional[float]] = {}
        for part in gather_or_raise(my_scores, 'scoring'):
            merged.update(part)
        return merged

    # -- ranking --------------------------------------------------------------
    def rank(self, context: SelectionContext) -> SelectionResult:
        if context.model is None or context.adapter is None:
            raise ValueError('InfluenceSelector needs the trained model and '
                             'its adapter (al_cfg.adapter)')
        params = [p for _, p in context.adapter.parameters(context.model)]
        times = {}
        t = time.time()
        v = self.reference_gradient(context, params)
        times['reference_gradient_s'] = time.time() - t
        t = time.time()
        s = self.s_test(context, params, v)
        times['s_test_s'] = time.time() - t
        t = time.time()
        scores = self.score(context, params, s)
        times['scoring_s'] = time.time() - t
        ranking = self.order(scores, context.seed)
        scored = {k: v for k, v in scores.items() if v is not None}
        info = dict(
            num_scored=len(scored),
            num_unscored=len(scores) - len(scored),
            v_norm=[float(x.norm()) for x in v],
            s_test_norm=[float(x.norm()) for x in s],
            scale_check=self.last_scale_report,
            lissa_scales=self.last_lissa_scales,
            solver=self.last_solver.get('name'),
            solver_info=self.last_solver,
            fast_path=self.fast_path,
            cache=self.last_cache_stats,
            **times)
        print_log(
            f'influence: scored {len(scored)} images, {info["num_unscored"]} '
            f'without pseudo label (policy {self.unscored!r}); times '
            f'{ {k: round(x, 1) for k, x in times.items()} }', context.logger)
        return SelectionResult(ranking=ranking, scores=scored, info=info)

    def order(self, scores: Dict[str, Optional[float]],
              seed: int) -> List[str]:
        """Scored ids by influence ascending, then the unscored per policy
        (:func:`order_by_score`)."""
        return order_by_score(
            scores, seed, descending=False, unscored=self.unscored)
