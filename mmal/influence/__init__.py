from .cg_solver import ConjugateGradient
from .damped_solver import DampedSolver, flatten, unflatten
from .exact_solver import ExactSolver
from .hvp import ImageHessian, hessian_vector_product, loss_grad
from .lissa import DivergenceError, LiSSA
from .params import flat_dot, select_parameters
from .planned_cache import PlannedCache
from .scale_check import SCALE_MODES, ScaleCheck
from .spectrum import auto_scales, block_top_eigenvalues, scale_report
from .directional import OutputProbe, frozen_parameters

__all__ = [
    'hessian_vector_product', 'loss_grad', 'LiSSA', 'DivergenceError',
    'flat_dot', 'select_parameters', 'block_top_eigenvalues', 'scale_report',
    'OutputProbe', 'frozen_parameters', 'ConjugateGradient',
    'DampedSolver', 'ExactSolver', 'flatten', 'unflatten', 'PlannedCache',
    'ImageHessian', 'ScaleCheck', 'SCALE_MODES', 'auto_scales'
]
