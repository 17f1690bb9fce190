"""Safe LiSSA scales: measured before the chains, raised when one diverges.

LiSSA's step ``h_b <- v_b + (1 - damp) h_b - (H_z h)_b / scale_b`` diverges
when a sampled Hessian has an eigenvalue outside
``(-damp * scale_b, (2 - damp) * scale_b)`` (see :mod:`.spectrum`). A scale
fixed for one model (the paper's FCOS R-50 ``[100, 8000, 5000]``) can be far
too small for another head. :class:`ScaleCheck` measures each block's
dominant eigenvalue on a few labeled images, takes
``max(configured, margin * |λ|)`` per block (:func:`~.spectrum.auto_scales`)
and, since a few images may miss the largest curvature the chains meet,
reruns the chains with the diverged blocks' scales raised, a bounded number
of times. A selection is never made from a diverged chain.
"""
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

from mmal.utils.distributed import gather_or_raise, is_master
from .hessian_problem import HessianProblem
from .lissa import DivergenceError, LiSSA
from .spectrum import (auto_scales, block_radius, block_top_eigenvalues,
                       scale_report)

SCALE_MODES = ('auto', 'fixed')


class ScaleCheck:
    """The selector's ``scale_check``: measure, choose scales, run LiSSA.

    Args:
        num_images (int): Labeled images (seeded pick) whose per-block
            dominant Hessian eigenvalue is measured by power iteration. 0
            measures nothing. Defaults to 4.
        iters (int): Power-iteration steps (HVPs) per image. Defaults to 20.
        mode (str): ``'auto'``: per block ``max(configured, margin * |λ|)``
            (``|λ|`` the largest measured magnitude), and a diverged chain
            makes its blocks' scales ``growth`` times larger and every chain
            run again, at most ``max_retries`` times. ``'fixed'``: the
            configured scales (the paper's), a warning for each block that
            would diverge, and a diverged chain stops the run.
            Defaults to ``'auto'``.
        margin (float): See ``mode`` (>= 1). Defaults to 1.5.
        growth (float): See ``mode`` (> 1). Defaults to 2.0.
        max_retries (int): See ``mode``. Defaults to 3.
    """

    def __init__(self,
                 num_images: int = 4,
                 iters: int = 20,
                 mode: str = 'auto',
                 margin: float = 1.5,
                 growth: float = 2.0,
                 max_retries: int = 3) -> None:
        if mode not in SCALE_MODES:
            raise ValueError(f'scale_check mode must be one of {SCALE_MODES}, '
                             f'got {mode!r}')
        if (int(num_images) < 0 or int(iters) < 1 or margin < 1 or growth <= 1
                or int(max_retries) < 0):
            raise ValueError(
                'scale_check needs num_images >= 0, iters >= 1, margin >= 1, '
                f'growth > 1, max_retries >= 0; got num_images={num_images}, '
                f'iters={iters}, margin={margin}, growth={growth}, '
                f'max_retries={max_retries}')
        self.num_images = int(num_images)
        self.iters = int(iters)
        self.mode = mode
        self.margin = float(margin)
        self.growth = float(growth)
        self.max_retries = int(max_retries) if mode == 'auto' else 0

    def pick(self, sample_ids: Sequence[str], seed: int) -> List[str]:
        """The labeled ids the check measures (seeded)."""
        ids = list(sample_ids)
        num = min(self.num_images, len(ids))
        order = np.random.default_rng([int(seed), 3]).permutation(len(ids))
        return [ids[i] for i in order[:num]]

    def measure(self, problem: HessianProblem,
                like: Sequence[torch.Tensor]) -> Optional[List[List[float]]]:
        """Dominant eigenvalue per picked image and block (signed).

        Measured by the first process and shared, so that every process
        takes the same scales.

        Returns:
            list[list[float]] | None: Per image, per block; None when
            ``num_images`` is 0.
        """
        ids = self.pick(problem.sample_ids, problem.seed)
        if not ids:
            return None

        def first_process():
            if not is_master():
                return None
            return block_top_eigenvalues(
                lambda hess, h: hess(h),
                problem.image_hvps(ids),
                like,
                iters=self.iters,
                seed=problem.seed)

        return gather_or_raise(first_process, 'LiSSA scale check')[0]

    def estimate(
        self, solver: LiSSA, v: Sequence[torch.Tensor], problem: HessianProblem
    ) -> Tuple[List[torch.Tensor], Optional[dict], dict]:
        """``s_test`` by ``solver`` with scales chosen as ``mode`` says.

        Sets ``solver.scale`` to the scales used. Collective (as
        :meth:`LiSSA.run_chains`); every decision is taken from gathered
        values, so every process takes the same one.

        Args:
            solver (LiSSA): The solver, with the configured scales.
            v (Sequence[Tensor]): Reference gradient, one tensor per block.
            problem (HessianProblem): As for :meth:`LiSSA.estimate`.

        Returns:
            tuple: ``s_test``; the spectrum report of
            :func:`~.spectrum.scale_report` against the scales first used
            (None when nothing was measured); and the record of the scales,
            ``dict(mode, block_names, configured, measured, used, retries,
            diverged)`` (``measured``: per block the largest ``|λ|``;
            ``diverged``: per failed attempt its scales and blocks).

        Raises:
            DivergenceError: A chain still diverged after ``max_retries``
                reruns (or at once in ``'fixed'`` mode).
        """
        names = list(problem.block_names)
        configured = solver.block_scales(len(v))
        eig = self.measure(problem, v)
        scales = (
            auto_scales(configured, eig, self.margin)
            if eig and self.mode == 'auto' else list(configured))
        report = None
        record: Dict[str, Any] = dict(
            mode=self.mode,
            block_names=names,
            configured=configured,
            measured=None,
            used=None,
            retries=0,
            diverged=[])
        if eig:
            report = scale_report(eig, scales, solver.damp, names)
            record['measured'] = block_radius(eig)
            self._log_check(report, len(eig), configured, scales,
                            problem.logger)
        for attempt in range(self.max_retries + 1):
            solver.scale = list(scales)
            results, diverged = solver.run_chains(v, problem)
            if not diverged:
                record.update(used=list(scales), retries=attempt)
                return solver.average(results), report, record
            blocks = sorted({b for d in diverged for b in d['blocks']})
            record['diverged'].append(
                dict(
                    scales=list(scales),
                    blocks=[names[b] for b in blocks],
                    chains=[d['chain'] for d in diverged]))
            if attempt == self.max_retries:
                break
            scales = [
                s * self.growth if b in blocks else s
                for b, s in enumerate(scales)
            ]
            print_log(
                f'LiSSA: {len(diverged)} chain(s) diverged in block(s) '
                f'{[names[b] for b in blocks]} at scales '
                f'{record["diverged"][-1]["scales"]} (first: '
                f'{diverged[0]["detail"]}); running every chain again with '
                f'scales {scales} (retry {attempt + 1} of '
                f'{self.max_retries})',
                problem.logger,
                level=logging.WARNING)
        raise DivergenceError(
            self._give_up(record, report, diverged[0]), blocks)

    def _log_check(self, report: dict, num: int, configured: Sequence[float],
                   scales: Sequence[float], logger: Any) -> None:
        top = [round(x, 4) for x in report['max_eigenvalue']]
        low = [round(x, 4) for x in report['min_eigenvalue']]
        rule = f', margin {self.margin}' if self.mode == 'auto' else ''
        print_log(
            f'LiSSA scale check on {num} labeled images: top Hessian '
            f'eigenvalue per block {top}, dominant negative {low}; safe '
            f'scales {report["safe_scale"]}, configured {list(configured)}, '
            f'used {list(scales)} (mode {self.mode!r}{rule})', logger)
        for msg in report['warnings']:
            print_log(
                'LiSSA scale check: ' + msg, logger, level=logging.WARNING)

    def _give_up(self, record: dict, report: Optional[dict],
                 last: dict) -> str:
        names = record['block_names']
        hit = sorted({n
                      for a in record['diverged']
                      for n in a['blocks']},
                     key=names.index)
        tried = '; '.join(
            f'{n!r} at scales '
            f'{[a["scales"][names.index(n)] for a in record["diverged"]]}'
            for n in hit)
        if self.mode == 'fixed':
            how = ("scale_check=dict(mode='auto') measures the curvature, "
                   'raises the scales and retries; or raise '
                   'al_cfg.selector.solver.scale or damp')
        else:
            how = (f'{self.max_retries} retries (x{self.growth} each) did '
                   'not help. Options: more retries or a larger growth '
                   '(al_cfg.selector.scale_check.max_retries / growth), a '
                   'larger floor (al_cfg.selector.solver.scale), or a larger '
                   'damp (a chain also grows along a negative eigenvalue '
                   'λ < -damp * scale); each damps s_test more')
        seen = ''
        if report is not None:
            top, low = ([round(x, 4) for x in report[k]]
                        for k in ('max_eigenvalue', 'min_eigenvalue'))
            seen = (f' The check measured top eigenvalues {top} and '
                    f'dominant negative ones {low} per block.')
        return (f'LiSSA diverged in block(s) {tried} (mode '
                f'{self.mode!r}): {how}.{seen} Last: {last["detail"]}')
