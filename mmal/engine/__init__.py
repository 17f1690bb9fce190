from .al_config import AL_CFG_DEFAULTS, resolve_al_cfg
from .al_runner import ActiveLearningRunner, take_budget
from .cycle_runner import CycleRunner
from .selection_hook import SelectionHook

__all__ = [
    'AL_CFG_DEFAULTS', 'resolve_al_cfg', 'ActiveLearningRunner',
    'take_budget', 'CycleRunner', 'SelectionHook'
]
