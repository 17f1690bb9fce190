from .base_adapter import BaseModelAdapter
from .single_stage_adapter import FCOSAdapter, SingleStageAdapter

__all__ = ['BaseModelAdapter', 'SingleStageAdapter', 'FCOSAdapter']
