"""LiSSA estimate of ``s_test = H^-1 v`` with the official ISAL semantics."""
import itertools
import math
import time
from typing import (Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import torch
from mmengine.logging import print_log

from mmal.registry import INFLUENCE_SOLVERS
from mmal.utils.distributed import gather_or_raise, shard
from .damped_solver import DampedSolver
from .hessian_problem import HessianProblem, ItemHvpFn


def _apply(hvp: Callable, h: List[torch.Tensor]) -> List[torch.Tensor]:
    return hvp(h)


class DivergenceError(RuntimeError):
    """Raised when a LiSSA chain produces NaN / Inf or keeps growing.

    Args:
        message (str): What diverged, where, and what to change.
        blocks (Sequence[int]): Indices of the parameter blocks that were
            over the bound when the chain stopped.
        detail (str): Where it diverged, without the advice (for logs).
    """

    def __init__(self,
                 message: str,
                 blocks: Sequence[int] = (),
                 detail: str = '') -> None:
        super().__init__(message)
        self.blocks = [int(b) for b in blocks]
        self.detail = detail or message


@INFLUENCE_SOLVERS.register_module()
class LiSSA(DampedSolver):
    """Stochastic estimate of ``s_test`` (Agarwal et al.), as in ISAL's code.

    One chain starts at ``h = v`` and, for one sampled labeled image ``z``
    per step, updates every parameter block ``b`` with::

        h_b <- v_b + (1 - damp) * h_b - (H_z h)_b / scale_b

    There is no final division by ``scale`` (the official code does none).
    With a fixed Hessian ``H`` the iteration converges to
    ``(H + damp * D)^-1 D v`` with ``D = diag(scale_b)``; for a block-diagonal
    ``H`` that is ``scale_b * (H_b + damp * scale_b * I)^-1 v_b`` per block.
    ``repeats`` independent chains are averaged.

    Args:
        damp (float): Relative damping. Defaults to 0.01 (official).
        scale (float | Sequence[float]): Per-block scale, or one value for
            every block. FCOS uses ``[100, 8000, 5000]`` (official).
        depth (int): Sampled images per chain (at most the number of labeled
            images). Defaults to 500 (paper).
        repeats (int): Number of independent chains averaged. Defaults to 4.
        max_norm_ratio (float): A chain is declared divergent when a block's
            norm exceeds ``max_norm_ratio * |v_b| / damp`` (the bound of a
            contracting iteration is ``|v_b| / damp``). Defaults to 10.
        log_interval (int): Steps between progress lines. Defaults to 100.
    """

    def __init__(self,
                 damp: float = 0.01,
                 scale: Union[float, Sequence[float]] = 25.0,
                 depth: int = 500,
                 repeats: int = 4,
                 max_norm_ratio: float = 10.0,
                 log_interval: int = 100) -> None:
        super().__init__(damp, scale)
        if depth <= 0 or repeats <= 0:
            raise ValueError(f'LiSSA depth and repeats must be > 0, got '
                             f'depth={depth}, repeats={repeats}')
        self.depth = int(depth)
        self.repeats = int(repeats)
        self.max_norm_ratio = float(max_norm_ratio)
        self.log_interval = int(log_interval)

    def estimate(self, v: Sequence[torch.Tensor],
                 problem: HessianProblem) -> List[torch.Tensor]:
        """``s_test`` on a labeled set, chains spread over the processes.

        Chain ``r`` runs on the process ``r % world_size``; every process
        averages the gathered chains in chain order, so the result does not
        depend on the number of processes. The scales are used as given
        (for scales measured from the Hessian and raised when a chain
        diverges, see :class:`~mmal.influence.ScaleCheck`).

        Args:
            v (Sequence[Tensor]): Reference gradient, one tensor per block.
            problem (HessianProblem): The labeled images' Hessians.

        Returns:
            list[Tensor]: ``s_test``, same shapes as ``v``.

        Raises:
            DivergenceError: A chain diverged (on every process alike; the
                first diverged chain's message).
        """
        results, diverged = self.run_chains(v, problem)
        if diverged:
            first = diverged[0]
            raise DivergenceError(
                f'{first["message"]} ({len(diverged)} of {len(results)} '
                'chains diverged)', first['blocks'], first['detail'])
        return self.average(results)

    def run_chains(
        self, v: Sequence[torch.Tensor], problem: HessianProblem
    ) -> Tuple[List[Optional[List[torch.Tensor]]], List[Dict[str, Any]]]:
        """Every chain of :meth:`estimate`, diverged ones included.

        A diverged chain stops at the step where a block passed the bound;
        the others run to their end. Collective: every process returns the
        same results and the same divergence records (gathered), so a
        decision taken from them is the same on every process, and it does
        not depend on how the chains were split.

        Returns:
            tuple: ``(results, diverged)``: per chain in chain order its
            final ``h`` (same shapes and devices as ``v``) or None where it
            diverged; and one record per diverged chain, in chain order,
            ``dict(chain, blocks, message, detail)`` (``blocks``: indices
            of the blocks over the bound; see :class:`DivergenceError`).
        """
        chains = self.sample_chains(problem.sample_ids, seed=problem.seed)
        print_log(
            f's_test (LiSSA): {len(chains)} chains x {len(chains[0])} '
            f'labeled images, scales {self.scale}', problem.logger)

        def my_chains():
            mine = shard(range(len(chains)))
            hvps = iter(
                problem.image_hvps([sid for r in mine for sid in chains[r]]))
            out = {}
            for r in mine:
                steps = itertools.islice(hvps, len(chains[r]))
                try:
                    h = self.run_chain(v, _apply, steps, r, len(chains),
                                       problem.block_names, problem.logger)
                    out[r] = [t.cpu() for t in h]
                except DivergenceError as e:
                    out[r] = dict(
                        chain=r,
                        blocks=e.blocks,
                        message=str(e),
                        detail=e.detail)
                    for _ in steps:  # the next chain's images come next
                        pass
            return out

        gathered = {}
        for part in gather_or_raise(my_chains, 's_test (LiSSA)'):
            gathered.update(part)
        ordered = [gathered[r] for r in range(len(chains))]
        diverged = [x for x in ordered if isinstance(x, dict)]
        results = [
            None
            if isinstance(x, dict) else [t.to(y.device) for t, y in zip(x, v)]
            for x in ordered
        ]
        return results, diverged

    def sample_chains(self, sample_ids: Sequence[str],
                      seed: int) -> List[List[str]]:
        """The images visited by each chain.

        Chain ``r`` is a seeded permutation of the sorted ids, cut at
        ``depth``: it depends on the ids and the seed only (not on the order
        the dataset lists them in, nor on the number of processes).

        Returns:
            list[list[str]]: ``repeats`` sequences of ids.
        """
        ordered = sorted(str(i) for i in sample_ids)
        if not ordered:
            raise ValueError('LiSSA needs at least one labeled image')
        depth = min(self.depth, len(ordered))
        chains = []
        for r in range(self.repeats):
            rng = np.random.default_rng([int(seed), r])
            perm = rng.permutation(len(ordered))[:depth]
            chains.append([ordered[i] for i in perm])
        return chains

    def solve(self,
              v: Sequence[torch.Tensor],
              hvp_fn: ItemHvpFn,
              chains: Sequence[Iterable[Any]],
              block_names: Optional[Sequence[str]] = None,
              logger: Any = 'current') -> List[torch.Tensor]:
        """Run the chains and average them.

        Args:
            v (Sequence[Tensor]): Reference gradient, one tensor per block.
            hvp_fn (Callable): ``hvp_fn(item, h) -> H_item h`` (blocks).
            chains (Sequence[Iterable]): One iterable of items (e.g. loaded
                images) per chain, as produced from :meth:`sample_chains`.
            block_names (Sequence[str], optional): Names used in messages.

        Returns:
            list[Tensor]: ``s_test``, same shapes as ``v``.

        Raises:
            DivergenceError: NaN / Inf, or a block norm above the bound.
        """
        return self.average([
            self.run_chain(v, hvp_fn, chain, r, len(chains), block_names,
                           logger) for r, chain in enumerate(chains)
        ])

    def run_chain(self,
                  v: Sequence[torch.Tensor],
                  hvp_fn: ItemHvpFn,
                  chain: Iterable[Any],
                  index: int = 0,
                  num_chains: int = 1,
                  block_names: Optional[Sequence[str]] = None,
                  logger: Any = 'current') -> List[torch.Tensor]:
        """One chain of the recursion, from ``h = v``.

        Chains are independent, so processes can run different chains and
        :meth:`average` their results in chain order.

        Args:
            index (int): The chain's number (messages only).
            num_chains (int): How many chains there are (messages only).

        Returns:
            list[Tensor]: The chain's final ``h``, same shapes as ``v``.
        """
        v = [t.detach() for t in v]
        names = list(block_names or [f'block{i}' for i in range(len(v))])
        scales = self.block_scales(len(v))
        v_norms = [float(t.norm()) for t in v]
        h = [t.clone() for t in v]
        start = time.time()
        steps = 0
        for step, item in enumerate(chain):
            hv = hvp_fn(item, h)
            h = [
                vb + (1 - self.damp) * hb - hvb / sb
                for vb, hb, hvb, sb in zip(v, h, hv, scales)
            ]
            self._check(h, v_norms, names, scales, index, step)
            steps = step + 1
            if self.log_interval and steps % self.log_interval == 0:
                rate = steps / max(time.time() - start, 1e-9)
                print_log(
                    f'LiSSA chain {index + 1}/{num_chains}: step {steps}, '
                    f'{rate:.2f} steps/s, |h| = '
                    f'{[round(float(t.norm()), 4) for t in h]}', logger)
        print_log(
            f'LiSSA chain {index + 1}/{num_chains} done: {steps} steps in '
            f'{time.time() - start:.1f}s', logger)
        return h

    @staticmethod
    def average(
            chain_results: Sequence[Sequence[torch.Tensor]]
    ) -> List[torch.Tensor]:
        """Mean of the chains' results, summed in the given (chain) order."""
        total = [torch.zeros_like(t) for t in chain_results[0]]
        for h in chain_results:
            total = [a + b for a, b in zip(total, h)]
        return [t / len(chain_results) for t in total]

    def _check(self, h: Sequence[torch.Tensor], v_norms: Sequence[float],
               names: Sequence[str], scales: Sequence[float], chain: int,
               step: int) -> None:
        over = []
        for b, (hb, vn, sb) in enumerate(zip(h, v_norms, scales)):
            norm = float(hb.norm())
            bound = self.max_norm_ratio * vn / max(self.damp, 1e-12)
            if not math.isfinite(norm) or (vn > 0 and norm > bound):
                over.append((b, f'block {names[b]!r}: |h| = {norm:.4g} '
                             f'(|v| = {vn:.4g}, bound {bound:.4g}, scale '
                             f'{sb})'))
        if over:
            detail = (f'LiSSA diverged in chain {chain}, step {step}, ' +
                      '; '.join(msg for _, msg in over))
            raise DivergenceError(
                detail + '. The step '
                'h <- v + (1 - damp) h - H h / scale grows along an '
                'eigenvalue λ of the sampled Hessian outside '
                f'(-damp * scale, (2 - damp) * scale) (damp {self.damp}): '
                'raise that block\'s scale (al_cfg.selector.solver.scale; '
                'al_cfg.selector.scale_check mode \'auto\' measures it and '
                'retries larger ones) or damp', [b for b, _ in over], detail)
