"""Registration of mmal's modules (and the OpenMMLab ones it builds on)."""
from mmengine.registry import init_default_scope


def register_all_modules(init_default_scope_to: str = '') -> None:
    """Import every mmal module that registers something.

    Also registers mmdet's modules, since mmal's configs build mmdet
    datasets, models and metrics.

    Args:
        init_default_scope_to (str): When set (e.g. ``'mmdet'``), also make
            it the default scope.
    """
    import mmal.datasets  # noqa: F401
    import mmal.engine  # noqa: F401
    import mmal.influence  # noqa: F401
    import mmal.models  # noqa: F401
    import mmal.selectors  # noqa: F401
    from mmdet.utils import register_all_modules as register_mmdet
    register_mmdet(init_default_scope=False)
    if init_default_scope_to:
        init_default_scope(init_default_scope_to)
