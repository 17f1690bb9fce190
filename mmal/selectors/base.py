"""Base class and data structures of query strategies."""
import abc
from dataclasses import dataclass, field
from typing import Any, Dict, List

from .selection_context import SelectionContext


@dataclass
class SelectionResult:
    """What a selector returns.

    Attributes:
        ranking (list[str]): Unlabeled ids, best first. The driver takes the
            head of it within the budget; it may be shorter than the pool
            (e.g. images a selector refuses to pick).
        scores (dict[str, float]): Score of each ranked id, when the
            selector has one (saved with the cycle's artifacts).
        info (dict): Diagnostics worth keeping (norms, timings, counts).
    """
    ranking: List[str]
    scores: Dict[str, float] = field(default_factory=dict)
    info: Dict[str, Any] = field(default_factory=dict)


class BaseSelector(metaclass=abc.ABCMeta):
    """A query strategy.

    Subclasses are registered in :data:`mmal.registry.SELECTORS` and
    implement :meth:`rank`. ``needs_model`` tells the driver whether to load
    the cycle's trained model (and the adapter) into the context.
    """

    needs_model: bool = True

    def check_config(self, cfg: Any) -> None:
        """Refuse a config this selector cannot work with, before any
        training (the driver calls it once). Raise
        :class:`~mmal.utils.errors.ConfigError` naming the key; the
        default accepts every config."""

    @abc.abstractmethod
    def rank(self, context: SelectionContext) -> SelectionResult:
        """Rank the unlabeled ids of ``context``, best first.

        Args:
            context (SelectionContext): The cycle's pool state, model,
                adapter, task and data views.

        Returns:
            SelectionResult: The ranking (unlabeled ids, no duplicates),
            scores and diagnostics.
        """
