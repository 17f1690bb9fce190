from .hvp import hessian_vector_product, loss_grad
from .lissa import DivergenceError, LiSSA
from .params import flat_dot, select_parameters

__all__ = [
    'hessian_vector_product', 'loss_grad', 'LiSSA', 'DivergenceError',
    'flat_dot', 'select_parameters'
]
