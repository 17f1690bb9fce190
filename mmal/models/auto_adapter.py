"""The adapter of a model, chosen from its type when a config names none.

Families, by the mmdet / mmpretrain base class of the model's type:

* ``SingleStageDetector`` (FCOS, RetinaNet, ATSS, GFL, RTMDet, YOLOX, ...):
  :class:`~mmal.models.SingleStageAdapter` (FCOS:
  :class:`~mmal.models.FCOSAdapter`, the paper's θ and scales);
* ``TwoStageDetector`` (Faster R-CNN, Cascade R-CNN, ...):
  :class:`~mmal.models.TwoStageAdapter` (Faster R-CNN:
  :class:`~mmal.models.FasterRCNNAdapter`, the paper's);
* mmpretrain's ``ImageClassifier``:
  :class:`~mmal.models.ImageClassifierAdapter`.

Anything else (DETR-family detectors, whose loss matches predictions to
boxes across decoder layers; segmentors; ...) is refused with the list of
the families that work.
"""
from typing import Any, Dict, List, Optional, Tuple

from mmengine.registry import MODELS

#: The models that keep the paper's θ and LiSSA scales (exact type name).
PAPER_ADAPTERS = {
    'FCOS': 'mmal.FCOSAdapter',
    'FasterRCNN': 'mmal.FasterRCNNAdapter',
}
SUPPORTED = ('mmdet single-stage detectors (FCOS, RetinaNet, ATSS, GFL, '
             'RTMDet, YOLOX, ...), mmdet two-stage detectors (Faster R-CNN, '
             'Cascade R-CNN, ...) and mmpretrain ImageClassifier')


def _families() -> List[Tuple[type, str]]:
    """(base class, adapter type) of each family whose package is
    installed, most specific first."""
    out = []
    try:
        from mmdet.models.detectors import (SingleStageDetector,
                                            TwoStageDetector)
    except ImportError:  # a classification-only install
        pass
    else:
        out += [(SingleStageDetector, 'mmal.SingleStageAdapter'),
                (TwoStageDetector, 'mmal.TwoStageAdapter')]
    try:
        from mmpretrain.models import ImageClassifier
    except ImportError:  # a detection-only install
        pass
    else:
        out.append((ImageClassifier, 'mmal.ImageClassifierAdapter'))
    return out


def model_class(model_cfg: Dict[str, Any],
                scope: Optional[str] = None) -> type:
    """The class a model config builds (the target model's for
    ``mmal.LearningLossModel``), looked up in ``scope`` (e.g. ``'mmdet'``).
    """
    while str(model_cfg.get('type', '')).split('.')[-1] == \
            'LearningLossModel':
        model_cfg = model_cfg['model']
    kind = model_cfg.get('type')
    if isinstance(kind, type):
        return kind
    with MODELS.switch_scope_and_registry(scope) as registry:
        cls = registry.get(kind)
    if cls is None:
        raise KeyError(f'model type {kind!r} is not registered in scope '
                       f'{scope!r}')
    return cls


def adapter_for(model_cfg: Dict[str, Any],
                scope: Optional[str] = None) -> Dict[str, str]:
    """The adapter config of the model ``model_cfg`` builds.

    Args:
        model_cfg (dict): The config's ``model``.
        scope (str, optional): The config's default scope.

    Returns:
        dict: ``dict(type=...)`` of the adapter.

    Raises:
        ValueError: the model is of no family mmal has an adapter for (the
            message names the families that work).
    """
    cls = model_class(model_cfg, scope)
    roi_head = model_cfg.get('roi_head') or {}
    if isinstance(roi_head, dict) and roi_head.get('mask_head'):
        raise ValueError(
            f'mmal has no adapter for {cls.__name__} with a mask head: it '
            f'works with {SUPPORTED} for boxes (instance segmentation is not '
            'supported; drop the mask head to select by boxes)')
    if cls.__name__ in PAPER_ADAPTERS:
        return dict(type=PAPER_ADAPTERS[cls.__name__])
    for base, adapter in _families():
        if issubclass(cls, base):
            return dict(type=adapter)
    bases = ', '.join(b.__name__ for b in cls.__mro__[1:4])
    raise ValueError(
        f'mmal has no adapter for {cls.__name__} (a {bases}): it works with '
        f'{SUPPORTED}. DETR-family detectors are not supported: their loss '
        'matches predictions to boxes across decoder layers. Set '
        'al_cfg.adapter to an adapter of your own (docs/en/advanced_guides/'
        'add_model.md)')
