from .base_adapter import BaseModelAdapter
from .detection_adapter import DetectionAdapter
from .precision import float64_computation
from .single_stage_adapter import FCOSAdapter, SingleStageAdapter
from .two_stage_adapter import FasterRCNNAdapter, TwoStageAdapter

__all__ = [
    'BaseModelAdapter', 'DetectionAdapter', 'SingleStageAdapter',
    'FCOSAdapter', 'TwoStageAdapter', 'FasterRCNNAdapter',
    'float64_computation'
]
