from .cg_solver import ConjugateGradient
from .damped_solver import DampedSolver, flatten, unflatten
from .directional import OutputProbe, frozen_parameters
from .exact_solver import ExactSolver
from .hessian_problem import HessianProblem, HvpFn, ItemHvpFn
from .hvp import ImageHessian, hessian_vector_product, loss_grad
from .linear_softmax import (softmax_ce_directional, softmax_ce_grad_sum,
                             softmax_ce_grads, softmax_ce_hessian,
                             softmax_ce_hvp, softmax_ce_hvps,
                             softmax_ce_residuals)
from .lissa import DivergenceError, LiSSA
from .params import flat_dot, select_parameters
from .planned_cache import PlannedCache
from .scale_check import SCALE_MODES, ScaleCheck
from .spectrum import auto_scales, block_top_eigenvalues, scale_report

__all__ = [
    'hessian_vector_product', 'loss_grad', 'LiSSA', 'DivergenceError',
    'flat_dot', 'select_parameters', 'block_top_eigenvalues', 'scale_report',
    'OutputProbe', 'frozen_parameters', 'ConjugateGradient', 'DampedSolver',
    'ExactSolver', 'flatten', 'unflatten', 'PlannedCache', 'ImageHessian',
    'HessianProblem', 'HvpFn', 'ItemHvpFn', 'ScaleCheck', 'SCALE_MODES',
    'auto_scales', 'softmax_ce_residuals', 'softmax_ce_grads',
    'softmax_ce_grad_sum', 'softmax_ce_hvp', 'softmax_ce_hvps',
    'softmax_ce_directional', 'softmax_ce_hessian'
]
