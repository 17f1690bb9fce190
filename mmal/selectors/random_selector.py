"""Random selection: the baseline every AL paper compares to."""
import numpy as np

from mmal.registry import SELECTORS
from .base import BaseSelector, SelectionResult
from .selection_context import SelectionContext


@SELECTORS.register_module()
class RandomSelector(BaseSelector):
    """Uniformly random ranking of the unlabeled pool (seeded).

    The ranking depends on the set of unlabeled ids (the context's
    :attr:`~mmal.datasets.SelectionContext.unlabeled_ids`) and the cycle
    seed only.
    """

    needs_model = False

    def rank(self, context: SelectionContext) -> SelectionResult:
        ids = list(context.unlabeled_ids)
        perm = np.random.default_rng(context.seed).permutation(len(ids))
        return SelectionResult(ranking=[ids[i] for i in perm])
