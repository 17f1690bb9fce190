from .base import BaseSelector, SelectionResult
from .influence_selector import InfluenceSelector
from .random_selector import RandomSelector

__all__ = [
    'BaseSelector', 'SelectionResult', 'InfluenceSelector', 'RandomSelector'
]
