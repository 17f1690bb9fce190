from .base_adapter import BaseModelAdapter
from .classifier_adapter import ImageClassifierAdapter
from .detection_adapter import DetectionAdapter
from .learning_loss_model import LearningLossModel
from .loss_prediction import LossPredictionModule, ranking_loss
from .single_stage_adapter import FCOSAdapter, SingleStageAdapter
from .two_stage_adapter import FasterRCNNAdapter, TwoStageAdapter

__all__ = [
    'BaseModelAdapter', 'DetectionAdapter', 'SingleStageAdapter',
    'FCOSAdapter', 'TwoStageAdapter', 'FasterRCNNAdapter',
    'ImageClassifierAdapter', 'LearningLossModel', 'LossPredictionModule',
    'ranking_loss'
]
