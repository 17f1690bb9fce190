from .hvp import hessian_vector_product, loss_grad
from .lissa import DivergenceError, LiSSA
from .params import flat_dot, select_parameters
from .spectrum import block_top_eigenvalues, scale_report

__all__ = [
    'hessian_vector_product', 'loss_grad', 'LiSSA', 'DivergenceError',
    'flat_dot', 'select_parameters', 'block_top_eigenvalues', 'scale_report'
]
