from .al_state import ALState
from .pool_state import PoolState

__all__ = ['ALState', 'PoolState']
