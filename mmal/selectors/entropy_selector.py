"""Entropy sampling: the most uncertain predictions first."""
import time
from typing import Dict, List, Optional

from mmengine.logging import print_log
from torch import nn

from mmal.registry import SELECTORS
from .base import BaseSelector, SelectionResult
from .pool_pass import pool_pass
from .score_order import check_unscored_policy, order_by_score
from .selection_context import SelectionContext


@SELECTORS.register_module()
class EntropySelector(BaseSelector):
    """Rank unlabeled images by the entropy of the model's predictions,
    highest (most uncertain) first.

    The entropy of an image is the adapter's
    :meth:`~mmal.models.BaseModelAdapter.prediction_entropy` of its
    prediction:

    * classification: the softmax entropy ``-sum_c p_c ln p_c``;
    * detection (the official ISAL code's ``max_entropy``): the largest
      binary entropy ``H(s) = -s ln s - (1-s) ln(1-s)`` over the scores
      ``s`` of the detector's final boxes (after its ``test_cfg`` score
      threshold and NMS). The official code sorts these ascending unless
      ``--sorted-reverse`` is given; entropy sampling takes the highest.

    An image for which the detector predicts no box has no entropy. Its
    every candidate scored below the detector's test threshold (0.05 for
    FCOS and Faster R-CNN), so the model is confident there is nothing,
    and its uncertainty is at most ``H(0.05)`` = 0.199 nats: by default
    (``unscored='random'``) such images are ranked after every image with
    a box, in seeded random order; ``'exclude'`` never picks them.

    Args:
        unscored (str): ``'random'`` or ``'exclude'`` (see above).
            Defaults to ``'random'``.
        batch_size (int): Images per inference batch (images of one padded
            shape only). 1 makes the scores bit-identical whatever the
            number of processes. Defaults to 8.
    """

    def __init__(self, unscored: str = 'random', batch_size: int = 8) -> None:
        self.unscored = check_unscored_policy(unscored)
        if int(batch_size) < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        self.batch_size = int(batch_size)

    def entropies(self,
                  context: SelectionContext) -> Dict[str, Optional[float]]:
        """Sample id -> entropy (None: nothing predicted) of every
        unlabeled image."""
        adapter = context.adapter

        def batch_entropy(model: nn.Module, data: Dict) -> List:
            return [
                adapter.prediction_entropy(p)
                for p in adapter.predict_batch(model, data)
            ]

        return pool_pass(
            context,
            batch_entropy,
            batch_size=self.batch_size,
            desc='entropy of unlabeled images')

    def rank(self, context: SelectionContext) -> SelectionResult:
        start = time.time()
        scores = self.entropies(context)
        ranking = order_by_score(
            scores, context.seed, descending=True, unscored=self.unscored)
        scored = {k: v for k, v in scores.items() if v is not None}
        info = dict(
            num_scored=len(scored),
            num_unscored=len(scores) - len(scored),
            pass_s=time.time() - start)
        print_log(
            f'entropy: scored {len(scored)} images, {info["num_unscored"]} '
            f'without prediction (policy {self.unscored!r}) in '
            f'{info["pass_s"]:.1f}s', context.logger)
        return SelectionResult(ranking=ranking, scores=scored, info=info)
