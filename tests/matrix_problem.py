"""A labeled set whose per-image Hessians are explicit matrices: the
solvers' ``problem`` interface (as :class:`LabeledHessian`) for tests on
closed forms. Light to import (spawned test processes import it)."""
import torch

from mmal.influence import flatten, unflatten


class MatrixProblem:
    """Per-image Hessians given as explicit matrices over two blocks."""

    def __init__(self, hessians, shapes, seed=0):
        self.hessians = hessians
        self.like = [torch.zeros(s, dtype=torch.float64) for s in shapes]
        self.sample_ids = sorted(hessians)
        self.seed = seed
        self.logger = 'current'
        self.block_names = ['a', 'b']
        self.hvp_calls = 0

    def _product(self, sid, h):
        self.hvp_calls += 1
        return unflatten(self.hessians[sid] @ flatten(h), self.like)

    def image_hvps(self, ids):
        for sid in ids:
            yield lambda h, sid=sid: self._product(sid, h)

    def mean_hvp_operator(self, ids, uses):
        return lambda h: [
            sum(x) / len(ids)
            for x in zip(*[self._product(sid, h) for sid in ids])
        ]

    def mean_hessian(self, ids):
        return sum(self.hessians[sid] for sid in ids) / len(ids)
