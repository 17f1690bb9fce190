"""Core-set selection (Sener & Savarese, ICLR 2018): k-center greedy."""
import time
from typing import Dict

import torch
from mmengine.logging import print_log
from torch import nn

from mmal.registry import SELECTORS
from .base import BaseSelector, SelectionResult
from .k_center_greedy import k_center_greedy
from .pool_pass import pool_pass
from .selection_context import SelectionContext


@SELECTORS.register_module()
class CoresetSelector(BaseSelector):
    """Pick the unlabeled images that cover the feature space best.

    Every image of the pool is embedded by the adapter's
    :meth:`~mmal.models.BaseModelAdapter.embed` (classification: the
    pooled features before the fc, 512-d for ResNet-18; FCOS: its
    classification and regression towers pooled per level, averaged over
    levels and concatenated; Faster R-CNN: the FPN levels pooled and
    averaged). k-center greedy (:func:`k_center_greedy`) then starts from
    the labeled images and repeatedly adds the unlabeled image farthest
    (Euclidean) from every image chosen so far.

    The ranking is the greedy's pick order, ``min(budget, unlabeled)``
    images long (``SelectionContext.budget``; the driver never takes more
    images than that, and a box budget takes a prefix of it). Its score is
    the image's distance to the chosen set when it was picked.

    Args:
        batch_size (int): Images per inference batch of the feature pass
            (1: features bit-identical whatever the number of processes).
            Defaults to 8.
        chunk_mb (float): Largest block of distances computed at once, in
            MiB (never a full pool x pool matrix). Defaults to 256.
    """

    def __init__(self, batch_size: int = 8, chunk_mb: float = 256.0) -> None:
        if int(batch_size) < 1 or chunk_mb <= 0:
            raise ValueError('batch_size must be >= 1 and chunk_mb > 0, got '
                             f'{batch_size}, {chunk_mb}')
        self.batch_size = int(batch_size)
        self.chunk_mb = float(chunk_mb)

    def features(self, context: SelectionContext,
                 labeled: bool) -> Dict[str, torch.Tensor]:
        """Sample id -> embedding (D, ) of the labeled or unlabeled
        images."""
        adapter = context.adapter

        def embed(model: nn.Module, data: Dict) -> torch.Tensor:
            return adapter.embed(model, data['inputs'])

        which = 'labeled' if labeled else 'unlabeled'
        return pool_pass(
            context,
            embed,
            view=context.labeled_view() if labeled else None,
            batch_size=self.batch_size,
            desc=f'core-set features of {which} images')

    def rank(self, context: SelectionContext) -> SelectionResult:
        start = time.time()
        unlabeled = self.features(context, labeled=False)
        labeled = self.features(context, labeled=True)
        pass_s = time.time() - start
        ids = sorted(unlabeled)
        u = torch.stack([unlabeled[i] for i in ids])
        lab = (
            torch.stack([labeled[i] for i in sorted(labeled)])
            if labeled else u.new_zeros((0, u.shape[1])))
        num = min(context.budget or len(ids), len(ids))
        start = time.time()
        picks, radii = k_center_greedy(
            lab,
            u,
            num,
            device=context.device,
            chunk_mb=self.chunk_mb,
            logger=context.logger,
            return_distances=True)
        greedy_s = time.time() - start
        info = dict(
            num_labeled=len(labeled),
            num_unlabeled=len(ids),
            dim=int(u.shape[1]),
            num_picks=len(picks),
            features_s=pass_s,
            greedy_s=greedy_s)
        print_log(
            f'core-set: {len(picks)} picks among {len(ids)} unlabeled '
            f'images ({info["dim"]}-d, {len(labeled)} labeled); features '
            f'{pass_s:.1f}s, greedy {greedy_s:.1f}s', context.logger)
        return SelectionResult(
            ranking=[ids[j] for j in picks],
            scores={
                ids[j]: float(r)
                for j, r in zip(picks, radii)
            },
            info=info)
