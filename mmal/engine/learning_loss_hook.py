"""Learning loss's stop-gradient, switched at an epoch (a hook)."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmal.registry import HOOKS


@HOOKS.register_module()
class LearningLossStopGradHook(Hook):
    """Detach the features entering learning loss's module from an epoch on.

    Before every training epoch the hook sets ``detach_features`` of the
    :class:`~mmal.models.LearningLossModel` being trained to
    ``runner.epoch >= detach_epoch``. ``runner.epoch`` is mmengine's count
    of finished epochs: 0 during the first epoch. So with
    ``detach_epoch=120`` (the paper's classification setting, 200 epochs)
    the first 120 epochs (0-119) train the target model through the ranking
    loss too, and epochs 120-199 (the 121st to the 200th, counted from 1)
    train the module alone; ``detach_epoch=0`` detaches from the start (the
    paper's detection setting: never into the backbone and neck).

    The state is decided from ``runner.epoch`` at every epoch, never kept
    by the hook, so a training resumed from a checkpoint on either side of
    ``detach_epoch`` is right. Epoch-based training loops only (an
    iteration-based loop has one "epoch").

    Args:
        detach_epoch (int): First epoch (counted from 0) whose features are
            detached.
    """

    priority = 'NORMAL'

    def __init__(self, detach_epoch: int) -> None:
        if not isinstance(detach_epoch, int) or detach_epoch < 0:
            raise ValueError('detach_epoch must be an integer >= 0, got '
                             f'{detach_epoch!r}')
        self.detach_epoch = detach_epoch

    def before_train_epoch(self, runner) -> None:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        if not hasattr(model, 'detach_features'):
            raise TypeError(
                'mmal.LearningLossStopGradHook needs the model to be an '
                f'mmal.LearningLossModel, got {type(model).__name__}: set '
                "model=dict(type='mmal.LearningLossModel', model=...)")
        detach = runner.epoch >= self.detach_epoch
        if detach != model.detach_features or runner.epoch == 0:
            print_log(
                f'epoch {runner.epoch} (from 0): learning loss features '
                f'{"detached" if detach else "attached"} (detach_epoch='
                f'{self.detach_epoch})', 'current')
        model.detach_features = detach
