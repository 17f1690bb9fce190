"""The active-learning curves of a run, logged to mmengine's visualizer.

Each cycle's mmengine Runner has its own ``cycle_k/<timestamp>/vis_data``
and closes its visualizer when its training ends; the selection comes after
that. The driver therefore owns one more visualizer for the whole run,
``<work_dir>/vis_data``, built from the config's visualizer backends (the
same TensorBoard / W&B / MLflow / local files the training curves go to),
and logs one point per cycle (``step`` = cycle):

========================== ===============================================
``al/labeled_images``      images the cycle's model was trained on
``al/labeled_cost``        their annotation cost (boxes; images for
                           classification)
``al/metric``              the cycle's test metric, in points (percent)
``al/metric_per_10k_cost`` ``1e4 * metric points / cost`` (the paper's
                           annotation efficiency)
``al/selection_time_s``    wall time of the cycle's selection (seconds)
``al/selected_images``     images the selection added
========================== ===============================================

Only what a run does is logged: a resumed run logs the cycles it runs, so
the files of an interrupted run hold each point once.
"""
import copy
import itertools
import time
from typing import Any, Dict, List, Optional

from mmengine.visualization import Visualizer

from mmal.utils.distributed import is_master

#: Scalar names, with ``al/`` in front.
SCALARS = ('labeled_images', 'labeled_cost', 'metric', 'metric_per_10k_cost',
           'selection_time_s', 'selected_images')
_counter = itertools.count()


def vis_backends_of(cfg: Any) -> List[dict]:
    """The visualizer backends a config's training logs to.

    ``cfg.visualizer.vis_backends`` (the OpenMMLab default runtimes set
    it), else a top-level ``vis_backends``, else mmengine's local files.
    """
    visualizer = cfg.get('visualizer') or {}
    backends = visualizer.get('vis_backends') if isinstance(visualizer,
                                                            dict) else None
    if backends is None:
        backends = cfg.get('vis_backends')
    if not backends:
        backends = [dict(type='LocalVisBackend')]
    return [dict(b) for b in copy.deepcopy(list(backends))]


class ALVisualizer:
    """One visualizer for a whole active-learning run (rank 0 only).

    Args:
        cfg: The run's config (its visualizer backends are used).
        work_dir (str): The run's work dir; the backends write under
            ``work_dir/vis_data``.
        name (str): Run name, part of the visualizer's instance name.
    """

    def __init__(self, cfg: Any, work_dir: str, name: str) -> None:
        self._vis: Optional[Visualizer] = None
        if is_master():
            self._vis = Visualizer.get_instance(
                f'mmal_al_{name}_{next(_counter)}_{time.time_ns()}',
                vis_backends=vis_backends_of(cfg),
                save_dir=work_dir)

    def log(self, cycle: int, **scalars: Optional[float]) -> None:
        """Log ``al/<key>`` scalars at ``step = cycle`` (None skipped).

        Raises:
            KeyError: A key that is not one of :data:`SCALARS`.
        """
        unknown = sorted(set(scalars) - set(SCALARS))
        if unknown:
            raise KeyError(f'unknown AL scalars {unknown}; known: {SCALARS}')
        values: Dict[str, float] = {
            f'al/{k}': float(v)
            for k, v in scalars.items() if v is not None
        }
        if self._vis is not None and values:
            self._vis.add_scalars(values, step=cycle)

    def close(self) -> None:
        """Flush and close the backends (idempotent)."""
        if self._vis is not None:
            self._vis.close()
            self._vis = None
