"""Learning loss (Yoo & Kweon, CVPR 2019): the highest predicted loss
first."""
import time
from typing import Any, Dict

from mmengine.logging import print_log
from torch import nn

from mmal.registry import SELECTORS
from mmal.utils.errors import ConfigError
from .base import BaseSelector, SelectionResult
from .pool_pass import pool_pass
from .score_order import order_by_score
from .selection_context import SelectionContext

#: The model type learning loss needs (``model.type`` of a config).
MODEL_TYPE = 'mmal.LearningLossModel'


def _is_learning_loss_type(model_type: Any) -> bool:
    """Whether a config's ``model.type`` (a name or a class) is
    :class:`~mmal.models.LearningLossModel` or a subclass of it."""
    if isinstance(model_type, type):
        return any(c.__name__ == 'LearningLossModel'
                   for c in model_type.__mro__)
    return isinstance(
        model_type,
        str) and model_type.split('.')[-1] == MODEL_TYPE.split('.')[-1]


@SELECTORS.register_module()
class LearningLossSelector(BaseSelector):
    """Rank unlabeled images by the loss that learning loss's module
    predicts for them, highest first.

    The cycle's model must be a :class:`~mmal.models.LearningLossModel`
    (``model=dict(type='mmal.LearningLossModel', model=<the target model>,
    ...)``; see ``configs/learning-loss_*.py``): it trained the module
    beside the task. One inference pass over the unlabeled images
    (:func:`~.pool_pass.pool_pass`) runs the target model's trunk and the
    module (:meth:`~mmal.models.LearningLossModel.predict_loss`); a
    detector's head and post-processing do not run.

    On CIFAR the paper ranks a random subset of 10,000 unlabeled images:
    ``al_cfg.unlabeled_subset`` (a key of the driver, usable with any
    selector).

    Args:
        batch_size (int): Images per inference batch (images of one padded
            shape only). 1 makes the scores bit-identical whatever the
            number of processes. Defaults to 8.
    """

    def __init__(self, batch_size: int = 8) -> None:
        if int(batch_size) < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        self.batch_size = int(batch_size)

    def check_config(self, cfg: Any) -> None:
        model_type = (cfg.get('model') or {}).get('type')
        if not _is_learning_loss_type(model_type):
            raise ConfigError(
                f'mmal.LearningLossSelector needs model.type = '
                f'{MODEL_TYPE!r} (the target model wrapped with the '
                f'loss-prediction module), got {model_type!r}; see '
                'configs/learning-loss_*.py')

    @staticmethod
    def learning_loss_model(model: nn.Module) -> nn.Module:
        """The :class:`~mmal.models.LearningLossModel` in ``model`` (under
        a DDP-style wrapper)."""
        bare = getattr(model, 'module', model)
        if not hasattr(bare, 'predict_loss'):
            raise TypeError(
                f'mmal.LearningLossSelector needs a {MODEL_TYPE} model, got '
                f'{type(bare).__name__}')
        return bare

    def predicted_losses(self, context: SelectionContext) -> Dict[str, float]:
        """Sample id -> predicted loss of every unlabeled image."""
        model = self.learning_loss_model(context.model)

        def batch_losses(_: nn.Module, data: Dict) -> list:
            return model.predict_loss(data['inputs']).tolist()

        return pool_pass(
            context,
            batch_losses,
            batch_size=self.batch_size,
            desc='learning loss: predicted losses')

    def rank(self, context: SelectionContext) -> SelectionResult:
        start = time.time()
        scores = self.predicted_losses(context)
        ranking = order_by_score(scores, context.seed, descending=True)
        info = dict(num_scored=len(scores), pass_s=time.time() - start)
        print_log(
            f'learning loss: predicted the loss of {len(scores)} images in '
            f'{info["pass_s"]:.1f}s', context.logger)
        return SelectionResult(ranking=ranking, scores=scores, info=info)
