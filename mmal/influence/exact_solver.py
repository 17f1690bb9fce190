"""s_test by an explicit Hessian and a direct solve (small heads)."""
from typing import List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log

from mmal.registry import INFLUENCE_SOLVERS
from .damped_solver import MeanHessianSolver, flatten, unflatten
from .hessian_problem import HessianProblem


@INFLUENCE_SOLVERS.register_module()
class ExactSolver(MeanHessianSolver):
    """Solve ``(H + damp D) s = D v`` with ``H`` built explicitly.

    ``H`` is the mean Hessian of the labeled images' losses w.r.t. θ, built
    column by column from Hessian-vector products with basis vectors (one
    per entry of θ and image; each image's gradient graph is built once)
    and summed over processes. This is the fixed point that LiSSA's chains
    estimate (:class:`~mmal.influence.LiSSA`), without sampling noise, for
    heads with a few thousand weights at most.

    Args:
        damp, scale, num_images: See :class:`MeanHessianSolver`.
        max_dim (int): Refuse heads with more weights than this (the cost is
            ``dim`` HVPs per image and ``dim^2`` memory). Defaults to 4096.
    """

    def __init__(self,
                 damp: float = 0.01,
                 scale: Union[float, Sequence[float]] = 1.0,
                 num_images: Optional[int] = None,
                 max_dim: int = 4096) -> None:
        super().__init__(damp, scale, num_images)
        self.max_dim = int(max_dim)

    def estimate(self, v: Sequence[torch.Tensor],
                 problem: HessianProblem) -> List[torch.Tensor]:
        """``s_test`` (same shapes as ``v``); see the class doc.

        Raises:
            ValueError: θ has more than ``max_dim`` weights.
        """
        dim = sum(t.numel() for t in v)
        if dim > self.max_dim:
            raise ValueError(
                f'ExactSolver: θ has {dim} weights, more than max_dim='
                f'{self.max_dim} (the explicit Hessian costs {dim} HVPs per '
                'image); use mmal.LiSSA or mmal.ConjugateGradient')
        ids = self.images(problem)
        print_log(
            f's_test (exact): Hessian {dim}x{dim} on {len(ids)} '
            'labeled images', problem.logger)
        H = problem.mean_hessian(ids)
        d = self.scale_vector(v)
        s = torch.linalg.solve(H + self.damp * torch.diag(d), d * flatten(v))
        return unflatten(s, v)
