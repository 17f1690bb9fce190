"""Test-only modules for tests/test_distributed.py (imported by the
processes of a run through the config's ``custom_imports``): a hook and a
selector that kill one rank once, like a crashed worker."""
import os
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmal.registry import HOOKS, SELECTORS
from mmal.selectors import InfluenceSelector


def _die_once(marker: str, rank: int) -> None:
    """Exit this process (no cleanup) if it is ``rank``, the first time."""
    if get_rank() == rank and not osp.exists(marker):
        open(marker, 'w').close()
        os._exit(3)


@HOOKS.register_module()
class KillRankOnceHook(Hook):
    """Kills ``rank`` after training epoch ``epoch`` (1-based) of ``cycle``.

    It runs before the checkpoint hook, so rank 0 may be saving or rotating
    checkpoints when torchrun stops it.
    """

    def __init__(self,
                 marker: str,
                 cycle: int,
                 epoch: int = 2,
                 rank: int = 1) -> None:
        self.marker, self.cycle, self.epoch, self.rank = (marker, cycle, epoch,
                                                          rank)

    def after_train_epoch(self, runner) -> None:
        if (osp.basename(runner.work_dir) == f'cycle_{self.cycle}'
                and runner.epoch + 1 >= self.epoch):
            _die_once(self.marker, self.rank)


@SELECTORS.register_module()
class DieOnceInfluenceSelector(InfluenceSelector):
    """ISAL that kills ``rank`` once, in the middle of scoring."""

    def __init__(self, marker: str, kill_rank: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.marker, self.kill_rank = marker, kill_rank

    def score(self, context, params, s_test):
        _die_once(self.marker, self.kill_rank)
        return super().score(context, params, s_test)
