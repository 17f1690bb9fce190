"""How much float rounding moves ISAL scores and selections: batch sizes.

The measurement behind ``tools/benchmarks/score_rounding.py``: on a
finished cycle of an mmal work dir, the reference gradient and s_test are
computed once, then the unlabeled pool (as it was before that cycle's
selection) is scored with the per-image path and with the fast path at
several batch sizes, and the scores and selections are compared
(:func:`~mmal.testing.benchmark.score_differences`). In float64
(:func:`~mmal.testing.precision.float64_mode`) the same tells rounding
apart from a real difference between the paths.
"""
import contextlib
import os.path as osp
import tempfile
from typing import Any, Dict, List, Sequence, Tuple

from mmengine.config import Config

from mmal.engine import ActiveLearningRunner
from mmal.selectors import InfluenceSelector
from mmal.structures import ALState, PoolState
from mmal.testing.benchmark import Scores, score_differences
from mmal.testing.precision import float64_mode
from mmal.utils.checkpoint import trusted_checkpoint_loading


def score_rounding(config: str,
                   work_dir: str,
                   cycle: int = 0,
                   batch_sizes: Sequence[int] = (1, 3, 8),
                   float64: bool = False) -> Dict[str, Any]:
    """Compare the fast path's scores at each batch size with the per-image
    path's, on cycle ``cycle`` of ``work_dir``.

    Args:
        config (str): The experiment's config file.
        work_dir (str): A work dir with a trained cycle ``cycle``
            (``al_state.json`` and the cycle's checkpoint).
        cycle (int): The cycle whose model and selection are redone.
            Defaults to 0.
        batch_sizes (Sequence[int]): Batch sizes of the fast path.
            Defaults to ``(1, 3, 8)``.
        float64 (bool): Everything in float64. Defaults to False.

    Returns:
        dict: ``dtype``, ``unlabeled``, ``budget`` and per batch size
        ``'fast path, batch <bs> vs per-image'``: the
        :func:`~mmal.testing.benchmark.score_differences` figures.
    """
    cfg = Config.fromfile(config)
    runner = ActiveLearningRunner(cfg, work_dir)
    state = ALState.load(osp.join(runner.work_dir, 'al_state.json'))
    # the pool as the cycle's selection saw it
    pool = PoolState(
        state.pool.pool_ids, {
            i: state.pool.cycle_of(i)
            for i in state.pool.labeled_ids if state.pool.cycle_of(i) <= cycle
        })
    seed = runner.al['seed'] * 1000 + cycle
    with trusted_checkpoint_loading():
        model = runner.load_model(runner.checkpoint_path(state, cycle))
    adapter = runner.adapter
    model = adapter.prepare(model, seed=seed)
    keys = {k: v for k, v in runner.al['selector'].items() if k != 'type'}
    with tempfile.TemporaryDirectory() as tmp, (float64_mode(
            adapter, model) if float64 else contextlib.nullcontext()):
        context = runner.selection_step.context(pool, cycle, seed, tmp, model)
        params = [p for _, p in adapter.parameters(model)]
        selector = InfluenceSelector(**keys)
        s_test = selector.s_test(context, params,
                                 selector.reference_gradient(context, params))
        ref = InfluenceSelector(**dict(keys, fast_path=False)).score(
            context, params, s_test)
        scores: List[Tuple[int, Scores]] = [
            (bs, InfluenceSelector(**dict(keys, batch_size=bs)).score(
                context, params, s_test)) for bs in batch_sizes
        ]
    budget = runner.al['budget']
    out: Dict[str, Any] = dict(
        dtype='float64' if float64 else 'float32',
        unlabeled=len(ref),
        budget=budget)
    for bs, other in scores:
        out[f'fast path, batch {bs} vs per-image'] = score_differences(
            ref, other, lambda s: selector.order(s, 0), budget)
    return out
