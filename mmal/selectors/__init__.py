from .base import BaseSelector, SelectionResult
from .coreset_selector import CoresetSelector
from .entropy_selector import EntropySelector
from .influence_selector import InfluenceSelector
from .k_center_greedy import k_center_greedy
from .learning_loss_selector import LearningLossSelector
from .localization_stability import (LocalizationStabilitySelector,
                                     add_pixel_noise, box_stability,
                                     localization_stability,
                                     prediction_stability)
from .pool_pass import pool_pass
from .ppal_selector import PPALSelector
from .random_selector import RandomSelector
from .score_order import UNSCORED_POLICIES, order_by_score
from .selection_context import SelectionContext

__all__ = [
    'BaseSelector', 'SelectionResult', 'SelectionContext', 'InfluenceSelector',
    'RandomSelector', 'EntropySelector', 'CoresetSelector',
    'LearningLossSelector', 'pool_pass', 'k_center_greedy', 'order_by_score',
    'UNSCORED_POLICIES', 'LocalizationStabilitySelector', 'add_pixel_noise',
    'box_stability', 'localization_stability', 'prediction_stability',
    'PPALSelector'
]
