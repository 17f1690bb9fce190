from .al_config import AL_CFG_DEFAULTS, resolve_al_cfg
from .al_experiment import Experiment, plan_runs
from .al_runner import ActiveLearningRunner, take_budget
from .al_visualizer import ALVisualizer
from .cycle_runner import CycleRunner
from .learning_loss_hook import LearningLossStopGradHook
from .selection_hook import SelectionHook

__all__ = [
    'AL_CFG_DEFAULTS', 'resolve_al_cfg', 'Experiment', 'plan_runs',
    'ActiveLearningRunner', 'take_budget', 'ALVisualizer', 'CycleRunner',
    'SelectionHook', 'LearningLossStopGradHook'
]
