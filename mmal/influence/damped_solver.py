"""What every s_test solver shares: the damped, per-block scaled system.

LiSSA's official update converges to ``s = (H + damp * D)^-1 D v`` with
``D = diag(scale_b)`` (one scale per parameter block, see
:class:`~mmal.influence.LiSSA`). The other solvers compute that same vector
directly, so a config can swap solvers and keep the meaning of
``damp`` / ``scale``; ``scale=1`` gives the plain damped inverse
``(H + damp I)^-1 v``.
"""
import abc
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from .hessian_problem import HessianProblem


class DampedSolver(metaclass=abc.ABCMeta):
    """Damping and per-block scales of the system ``(H + damp D) s = D v``.

    The base of every solver in :data:`mmal.registry.INFLUENCE_SOLVERS`: a
    solver implements :meth:`estimate`.

    Args:
        damp (float): Relative damping, in [0, 1).
        scale (float | Sequence[float]): Per-block scale, or one value for
            every block.
    """

    def __init__(self,
                 damp: float = 0.01,
                 scale: Union[float, Sequence[float]] = 1.0) -> None:
        if not 0 <= damp < 1:
            raise ValueError(f'{type(self).__name__} damp must be in [0, 1), '
                             f'got {damp}')
        scales = [scale] if isinstance(scale, (int, float)) else list(scale)
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f'{type(self).__name__} scales must be > 0, '
                             f'got {scales}')
        self.damp = float(damp)
        self.scale = [float(s) for s in scales]

    @abc.abstractmethod
    def estimate(self, v: Sequence[torch.Tensor],
                 problem: HessianProblem) -> List[torch.Tensor]:
        """``s_test``, the solution of ``(H + damp D) s = D v``, with ``H``
        the labeled images' mean Hessian (or LiSSA's stochastic estimate).

        Args:
            v (Sequence[Tensor]): Reference gradient, one tensor per block.
            problem (HessianProblem): The labeled images' Hessians.

        Returns:
            list[Tensor]: ``s_test``, same shapes as ``v``.
        """

    def block_scales(self, num_blocks: int) -> List[float]:
        """Scale of each of ``num_blocks`` parameter blocks."""
        if len(self.scale) == 1:
            return self.scale * num_blocks
        if len(self.scale) != num_blocks:
            raise ValueError(
                f'{type(self).__name__} has {len(self.scale)} scales '
                f'{self.scale} but the model adapter selects {num_blocks} '
                'parameter blocks')
        return list(self.scale)

    def scale_vector(self, like: Sequence[torch.Tensor]) -> torch.Tensor:
        """``diag(D)`` flattened like :func:`flatten` of ``like`` (float64)."""
        scales = self.block_scales(len(like))
        return torch.cat([
            torch.full((t.numel(), ), s, dtype=torch.float64)
            for t, s in zip(like, scales)
        ])

    @staticmethod
    def subset(ids: Sequence[str], num: Union[int, None],
               seed: int) -> List[str]:
        """A seeded subset of at most ``num`` of the sorted ``ids``."""
        ordered = sorted(str(i) for i in ids)
        if not ordered:
            raise ValueError('the solver needs at least one labeled image')
        if num is None or num >= len(ordered):
            return ordered
        pick = np.random.default_rng([int(seed), 4]).choice(
            len(ordered), int(num), replace=False)
        return sorted(ordered[i] for i in pick)


class MeanHessianSolver(DampedSolver):
    """A solver that works with the mean Hessian of (a subset of) the
    labeled images, split over processes.

    Args:
        damp (float): Relative damping. Defaults to 0.01.
        scale (float | Sequence[float]): Per-block scales ``D``; the
            selector fills in the adapter's LiSSA scales when unset.
        num_images (int, optional): Use a seeded subset of at most this many
            labeled images. Defaults to all.
    """

    def __init__(self,
                 damp: float = 0.01,
                 scale: Union[float, Sequence[float]] = 1.0,
                 num_images: Optional[int] = None) -> None:
        super().__init__(damp, scale)
        if num_images is not None and int(num_images) < 1:
            raise ValueError(f'{type(self).__name__} num_images must be >= 1 '
                             f'or None, got {num_images}')
        self.num_images = num_images

    def images(self, problem: HessianProblem) -> List[str]:
        """The labeled ids this solver uses (seeded subset)."""
        return self.subset(problem.sample_ids, self.num_images, problem.seed)


def flatten(blocks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Blocks as one float64 vector on the CPU."""
    return torch.cat([b.detach().reshape(-1).double().cpu() for b in blocks])


def unflatten(flat: torch.Tensor,
              like: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Inverse of :func:`flatten`, with ``like``'s shapes, dtypes, devices."""
    out, start = [], 0
    for t in like:
        n = t.numel()
        out.append(flat[start:start + n].reshape(t.shape).to(t))
        start += n
    return out
