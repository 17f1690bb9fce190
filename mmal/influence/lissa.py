"""LiSSA estimate of ``s_test = H^-1 v`` with the official ISAL semantics."""
import itertools
import math
import time
from typing import Any, Callable, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.logging import print_log

from mmal.registry import INFLUENCE_SOLVERS
from mmal.utils.distributed import gather_or_raise, shard
from .damped_solver import DampedSolver

HvpFn = Callable[[Any, List[torch.Tensor]], List[torch.Tensor]]


def _apply(hvp: Callable, h: List[torch.Tensor]) -> List[torch.Tensor]:
    return hvp(h)


class DivergenceError(RuntimeError):
    """Raised when a LiSSA chain produces NaN / Inf or keeps growing."""


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
                 problem) -> List[torch.Tensor]:
        """``s_test`` on a labeled set, chains spread over the processes.

        Chain ``r`` runs on the process ``r % world_size``; every process
        averages the gathered chains in chain order, so the result does not
        depend on the number of processes.

        Args:
            v (Sequence[Tensor]): Reference gradient, one tensor per block.
            problem (LabeledHessian): The labeled images' Hessians
                (``sample_ids``, ``seed``, ``image_hvps(ids)``,
                ``block_names``, ``logger``).

        Returns:
            list[Tensor]: ``s_test``, same shapes as ``v``.
        """
        chains = self.sample_chains(problem.sample_ids, seed=problem.seed)
        print_log(
            f's_test (LiSSA): {len(chains)} chains x {len(chains[0])} '
            'labeled images', problem.logger)

        def my_chains():
            mine = shard(range(len(chains)))
            hvps = iter(problem.image_hvps(
                [sid for r in mine for sid in chains[r]]))
            out = {}
            for r in mine:
                h = self.run_chain(v, _apply,
                                   itertools.islice(hvps, len(chains[r])), r,
                                   len(chains), problem.block_names,
                                   problem.logger)
                out[r] = [t.cpu() for t in h]
            return out

        results = {}
        for part in gather_or_raise(my_chains, 's_test (LiSSA)'):
            results.update(part)
        return self.average([[t.to(x.device) for t, x in zip(results[r], v)]
                             for r in range(len(chains))])

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
              hvp_fn: HvpFn,
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
                  hvp_fn: HvpFn,
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
            h = [vb + (1 - self.damp) * hb - hvb / sb
                 for vb, hb, hvb, sb in zip(v, h, hv, scales)]
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
    def average(chain_results: Sequence[Sequence[torch.Tensor]]
                ) -> List[torch.Tensor]:
        """Mean of the chains' results, summed in the given (chain) order."""
        total = [torch.zeros_like(t) for t in chain_results[0]]
        for h in chain_results:
            total = [a + b for a, b in zip(total, h)]
        return [t / len(chain_results) for t in total]

    def _check(self, h: Sequence[torch.Tensor], v_norms: Sequence[float],
               names: Sequence[str], scales: Sequence[float], chain: int,
               step: int) -> None:
        for hb, vn, name, sb in zip(h, v_norms, names, scales):
            norm = float(hb.norm())
            bound = self.max_norm_ratio * vn / max(self.damp, 1e-12)
            if not math.isfinite(norm) or (vn > 0 and norm > bound):
                raise DivergenceError(
                    f'LiSSA diverged in chain {chain}, step {step}, block '
                    f'{name!r}: |h| = {norm:.4g} (|v| = {vn:.4g}, bound '
                    f'{bound:.4g}). The scale of this block ({sb}) is too '
                    f'small for its Hessian: raise it in '
                    f'al_cfg.selector.solver.scale, or raise damp.')
