"""ISAL: Influence Selection for Active Learning (Liu et al., ICCV 2021)."""
import logging
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log

from mmal.influence import (block_top_eigenvalues, flat_dot,
                            hessian_vector_product, loss_grad, scale_report)
from mmal.registry import INFLUENCE_SOLVERS, SELECTORS
from mmal.utils.distributed import as_float64_sum, gather_or_raise, shard
from mmal.utils.progress import track_progress
from .base import BaseSelector, SelectionResult

UNSCORED_POLICIES = ('random', 'exclude')
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
        scale_check (dict, optional): Before LiSSA, measure the top Hessian
            eigenvalue of each block on ``num_images`` labeled images
            (power iteration, ``iters`` HVPs each), log the safe scales and
            warn when a configured scale would diverge. ``None`` skips it.
            Defaults to ``dict(num_images=4, iters=20)``.
    """

    def __init__(self,
                 score_thr: float = 0.1,
                 reference: str = 'val',
                 reference_max_images: Optional[int] = None,
                 solver: Optional[dict] = None,
                 unscored: str = 'random',
                 scale_check: Optional[dict] = dict(num_images=4,
                                                    iters=20)) -> None:
        if reference not in REFERENCE_SETS:
            raise ValueError(f'reference must be one of {REFERENCE_SETS}, '
                             f'got {reference!r}')
        if unscored not in UNSCORED_POLICIES:
            raise ValueError(f'unscored must be one of {UNSCORED_POLICIES}, '
                             f'got {unscored!r}')
        self.score_thr = float(score_thr)
        self.reference = reference
        self.reference_max_images = reference_max_images
        self.solver_cfg = dict(solver or dict(type='mmal.LiSSA'))
        self.unscored = unscored
        self.scale_check = None if scale_check is None else dict(scale_check)
        self.last_scale_report: Optional[dict] = None

    # -- the three passes ---------------------------------------------------
    # Each pass is sharded over the processes (``shard``: every
    # world_size-th id, no padding) and combined in a fixed order, so the
    # result does not depend on the number of processes.
    def reference_gradient(self, context, params) -> List[torch.Tensor]:
        """``v``: sum of per-image loss gradients over the reference set."""
        view = (context.validation_view() if self.reference == 'val' else
                context.labeled_view())
        ids = list(view.sample_ids)
        if self.reference_max_images and len(ids) > self.reference_max_images:
            rng = np.random.default_rng([context.seed, 1])
            pick = rng.choice(len(ids), self.reference_max_images,
                              replace=False)
            ids = sorted(ids[i] for i in pick)

        def partial_sum():  # float64: the same sum however it is split
            mine = shard(ids)
            acc = [torch.zeros_like(p, dtype=torch.float64) for p in params]
            for batch in track_progress(
                    context.loader(view, mine), len(mine),
                    f'reference gradient ({self.reference})',
                    context.logger):
                loss = context.adapter.gt_loss(context.model, batch)
                acc = [a + g.detach().double()
                       for a, g in zip(acc, loss_grad(loss, params))]
            return [a.cpu() for a in acc]

        return as_float64_sum(
            gather_or_raise(partial_sum, 'reference gradient'), params)

    def build_solver(self, context):
        cfg = dict(self.solver_cfg)
        if cfg.get('scale') is None and context.adapter.lissa_scale:
            cfg['scale'] = list(context.adapter.lissa_scale)
        return INFLUENCE_SOLVERS.build(cfg)

    def s_test(self, context, params, v) -> List[torch.Tensor]:
        """``H^-1 v`` estimated on the labeled images (chains over ranks)."""
        solver = self.build_solver(context)
        view = context.labeled_view()
        chains = solver.sample_chains(view.sample_ids, seed=context.seed)
        names = [n for n, _ in context.adapter.parameters(context.model)]

        def hvp(batch, h):
            loss = context.adapter.gt_loss(context.model, batch)
            return hessian_vector_product(loss, params, h)

        def my_chains():
            out = {}
            for r in shard(range(len(chains))):
                h = solver.run_chain(v, hvp, context.loader(view, chains[r]),
                                     r, len(chains), names, context.logger)
                out[r] = [t.cpu() for t in h]
            return out

        self.last_scale_report = self.check_scales(context, solver, view,
                                                   hvp, params, names)
        print_log(
            f's_test: {len(chains)} chains x {len(chains[0])} labeled images',
            context.logger)
        results = {}
        for part in gather_or_raise(my_chains, 's_test (LiSSA)'):
            results.update(part)
        device = params[0].device
        return solver.average([[t.to(device) for t in results[r]]
                               for r in range(len(chains))])

    def check_scales(self, context, solver, view, hvp, params,
                     names) -> Optional[dict]:
        """Measure the per-block spectrum on a few labeled images; warn.

        Every rank measures the same seeded images (a few dozen HVPs next to
        LiSSA's thousands), so no communication is needed.
        """
        if self.scale_check is None or not hasattr(solver, 'block_scales'):
            return None
        ids = sorted(view.sample_ids)
        num = min(int(self.scale_check.get('num_images', 4)), len(ids))
        pick = np.random.default_rng([context.seed, 3]).permutation(
            len(ids))[:num]
        eig = block_top_eigenvalues(
            hvp, context.loader(view, [ids[i] for i in pick]), params,
            iters=int(self.scale_check.get('iters', 20)), seed=context.seed)
        scales = solver.block_scales(len(params))
        report = scale_report(eig, scales, solver.damp, names)
        top = [round(x, 4) for x in report['max_eigenvalue']]
        low = [round(x, 4) for x in report['min_eigenvalue']]
        print_log(
            f'LiSSA scale check on {num} labeled images: top Hessian '
            f'eigenvalue per block {top}, dominant negative {low}; safe '
            f'scales {report["safe_scale"]}, configured {scales}',
            context.logger)
        for msg in report['warnings']:
            print_log('LiSSA scale check: ' + msg, context.logger,
                      level=logging.WARNING)
        return report

    def score(self, context, params,
              s_test: Sequence[torch.Tensor]) -> Dict[str, Optional[float]]:
        """Influence of each unlabeled image (None: no pseudo box)."""
        view = context.unlabeled_view()

        def my_scores():
            mine = shard(list(view.sample_ids))
            scores: Dict[str, Optional[float]] = {}
            for batch in track_progress(
                    context.loader(view, mine), len(mine),
                    'scoring unlabeled images', context.logger):
                loss, num = context.adapter.pseudo_loss(
                    context.model, batch, self.score_thr)
                sid = batch['sample_id'][0]
                if loss is None:
                    scores[sid] = None
                    continue
                grad = loss_grad(loss, params)
                scores[sid] = -float(flat_dot(s_test, grad))
            return scores

        merged: Dict[str, Optional[float]] = {}
        for part in gather_or_raise(my_scores, 'scoring'):
            merged.update(part)
        return merged

    # -- ranking --------------------------------------------------------------
    def rank(self, context) -> SelectionResult:
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
            **times)
        print_log(
            f'influence: scored {len(scored)} images, {info["num_unscored"]} '
            f'without pseudo box (policy {self.unscored!r}); times '
            f'{ {k: round(x, 1) for k, x in times.items()} }', context.logger)
        return SelectionResult(ranking=ranking, scores=scored, info=info)

    def order(self, scores: Dict[str, Optional[float]],
              seed: int) -> List[str]:
        """Scored ids by influence ascending, then the unscored per policy."""
        scored = sorted((v, k) for k, v in scores.items() if v is not None)
        ranking = [k for _, k in scored]
        if self.unscored == 'random':
            rest = sorted(k for k, v in scores.items() if v is None)
            perm = np.random.default_rng([seed, 2]).permutation(len(rest))
            ranking += [rest[i] for i in perm]
        return ranking
