"""The contract of a task (see :mod:`mmal.tasks`)."""
import abc
import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple


def transform_name(t: dict) -> str:
    """The class name of a pipeline step, without its scope prefix."""
    return str(t.get('type', '')).split('.')[-1]


class BaseTask(metaclass=abc.ABCMeta):
    """What the active-learning loop needs to know about a task.

    Subclasses are registered in :data:`mmal.registry.TASKS`; a model
    adapter names its task (``BaseModelAdapter.task``).

    Attributes:
        cost_unit (str): What one unit of annotation cost is (``'boxes'``,
            ``'images'``); the state records ``cost`` in it.
        default_metric_keys (tuple[str]): Evaluation keys tried in order
            when ``al_cfg.metric_key`` is None.
        metric_scale (float): Multiplies the evaluator's value into a
            fraction (1 for mmdet's mAP, 0.01 for mmpretrain's accuracy in
            percent), so ``metric`` and ``target_metric`` are fractions.
        default_scope (str): The OpenMMLab scope of the task's configs.
    """

    #: Annotation mode's file format (:data:`mmal.annotation.FORMATS`).
    annotation_format: str = ''
    cost_unit: str = ''
    default_metric_keys: Tuple[str, ...] = ()
    metric_scale: float = 1.0
    default_scope: str = ''

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def cost_is_images(self) -> bool:
        """Whether the cost is the number of images (then logs and
        tables show no separate cost column)."""
        return self.cost_unit == 'images'

    @abc.abstractmethod
    def annotated_pipeline(self, pipeline: Sequence[dict]) -> List[dict]:
        """A test-time pipeline that also loads the annotations."""

    @abc.abstractmethod
    def unannotated_pipeline(self, pipeline: Sequence[dict]) -> List[dict]:
        """A test-time pipeline that never reads the annotations
        (unlabeled images: the simulation must not see their labels)."""

    @abc.abstractmethod
    def costs(self, dataset: Any) -> Dict[str, int]:
        """Annotation cost of every sample of an initialised dataset.

        Args:
            dataset: Has ``__len__`` and ``get_data_info`` (a
                :class:`~mmal.datasets.PoolSubsetDataset`).

        Returns:
            dict[str, int]: Sample id -> cost, in dataset order.
        """

    @abc.abstractmethod
    def generate_demo_data(self, out_dir: str, **kwargs: Any) -> Any:
        """Write the built-in demo data (a config's ``demo_data`` block)."""

    def metric_key(self,
                   metrics: Dict[str, float],
                   configured: Optional[str] = None) -> Optional[str]:
        """The key a cycle reports: ``configured``, else the first default
        key present in ``metrics`` (None when neither)."""
        if configured:
            return configured
        return next((k for k in self.default_metric_keys if k in metrics),
                    None)

    def as_fraction(self, value: float) -> float:
        """An evaluator's value of the reported metric as a fraction."""
        return float(value) * self.metric_scale


def copy_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    return [copy.deepcopy(t) for t in pipeline]
