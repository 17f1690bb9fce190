from .al_config import AL_CFG_DEFAULTS, resolve_al_cfg
from .al_runner import ActiveLearningRunner, take_budget
from .cycle_runner import CycleRunner
from .selection_context import SelectionContext

__all__ = [
    'AL_CFG_DEFAULTS', 'resolve_al_cfg', 'ActiveLearningRunner',
    'take_budget', 'SelectionContext', 'CycleRunner'
]
