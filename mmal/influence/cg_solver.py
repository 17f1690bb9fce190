"""s_test by conjugate gradients on the mean labeled Hessian."""
import math
from typing import List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log

from mmal.registry import INFLUENCE_SOLVERS
from .damped_solver import MeanHessianSolver, flatten, unflatten
from .hessian_problem import HessianProblem


@INFLUENCE_SOLVERS.register_module()
class ConjugateGradient(MeanHessianSolver):
    """Solve ``(H + damp D) s = D v`` by conjugate gradients.

    Each iteration is one product with the mean Hessian of the labeled
    images (one HVP per image, split over processes and summed). The
    system is symmetrised as ``(D^-1/2 H D^-1/2 + damp I) y = D^1/2 v``,
    ``s = D^-1/2 y``, which has the same solution and is better
    conditioned when the scales differ.

    Args:
        damp, scale, num_images: See :class:`MeanHessianSolver`.
        max_iters (int): Iteration cap. Defaults to 50.
        tol (float): Stop when the residual norm is below ``tol`` times the
            right-hand side's. Defaults to 1e-6.
    """

    def __init__(self,
                 damp: float = 0.01,
                 scale: Union[float, Sequence[float]] = 1.0,
                 num_images: Optional[int] = None,
                 max_iters: int = 50,
                 tol: float = 1e-6) -> None:
        super().__init__(damp, scale, num_images)
        if max_iters <= 0 or tol <= 0:
            raise ValueError('ConjugateGradient needs max_iters > 0 and '
                             f'tol > 0, got {max_iters}, {tol}')
        self.max_iters = int(max_iters)
        self.tol = float(tol)
        self.info: dict = {}

    def estimate(self, v: Sequence[torch.Tensor],
                 problem: HessianProblem) -> List[torch.Tensor]:
        """``s_test`` (same shapes as ``v``); see the class doc.

        Stops early (with a warning in the log) if the damped Hessian shows
        a non-positive curvature direction, where CG is undefined.
        """
        ids = self.images(problem)
        root = self.scale_vector(v).sqrt()
        mean_hvp = problem.mean_hvp_operator(ids, self.max_iters + 1)

        def apply(y: torch.Tensor) -> torch.Tensor:
            hv = flatten(mean_hvp(unflatten(y / root, v)))
            return hv / root + self.damp * y

        b = root * flatten(v)
        y = torch.zeros_like(b)
        r = b.clone()
        p = r.clone()
        rr = float(r @ r)
        target = (self.tol * math.sqrt(float(b @ b)))**2
        it = 0
        for it in range(1, self.max_iters + 1):
            if rr <= target:
                it -= 1
                break
            ap = apply(p)
            curvature = float(p @ ap)
            if curvature <= 0:
                print_log(
                    f'ConjugateGradient: non-positive curvature '
                    f'{curvature:.3g} at iteration {it}; stopping (raise '
                    'damp)',
                    problem.logger,
                    level=30)
                break
            alpha = rr / curvature
            y = y + alpha * p
            r = r - alpha * ap
            rr_new = float(r @ r)
            p = r + (rr_new / rr) * p
            rr = rr_new
        rel = math.sqrt(rr / max(float(b @ b), 1e-300))
        self.info = dict(iterations=it, relative_residual=rel)
        print_log(
            f's_test (CG): {it} iterations on {len(ids)} labeled images, '
            f'relative residual {rel:.2e}', problem.logger)
        return unflatten(y / root, v)
