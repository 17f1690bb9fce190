from mmal.models.class_quality import class_quality_of
from .al_config import AL_CFG_DEFAULTS, resolve_al_cfg
from .al_experiment import Experiment, plan_runs
from .al_runner import ActiveLearningRunner
from .al_visualizer import ALVisualizer
from .class_quality_hook import ClassQualityHook
from .cycle_runner import CycleRunner
from .learning_loss_hook import LearningLossStopGradHook
from .selection_hook import SelectionHook
from .selection_step import Selection, SelectionStep, take_budget

__all__ = [
    'AL_CFG_DEFAULTS', 'resolve_al_cfg', 'Experiment', 'plan_runs',
    'ActiveLearningRunner', 'take_budget', 'Selection', 'SelectionStep',
    'ALVisualizer', 'CycleRunner', 'SelectionHook', 'LearningLossStopGradHook',
    'ClassQualityHook', 'class_quality_of'
]
