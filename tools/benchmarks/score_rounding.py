"""How much float rounding moves ISAL scores and selections: batch sizes.

On a finished cycle of an mmal work dir, compute the reference gradient and
s_test once, then score the unlabeled pool (as it was before that cycle's
selection) with the per-image path and with the fast path at several batch
sizes, and compare the scores and the selections. With ``--float64`` the
same in float64 (``adapter.float64``), which tells rounding apart from a
real difference between the paths.

    python tools/al_train.py configs/isal_faster-rcnn_shapes.py \\
        --work-dir work_dirs/frcnn_round --cfg-options al_cfg.num_cycles=1
    python tools/benchmarks/score_rounding.py \\
        configs/isal_faster-rcnn_shapes.py work_dirs/frcnn_round
    python tools/benchmarks/score_rounding.py \\
        configs/isal_faster-rcnn_shapes.py work_dirs/frcnn_round --float64
"""
import argparse
import contextlib
import json
import os.path as osp
import tempfile
from typing import Dict, List, Optional

import numpy as np
from mmengine.config import Config

from mmal.engine import ActiveLearningRunner, SelectionContext
from mmal.selectors import InfluenceSelector
from mmal.structures import ALState, PoolState
from mmal.utils import register_all_modules
from mmal.utils.checkpoint import trusted_checkpoint_loading


def compare(ref: Dict[str, Optional[float]], other: Dict[str, Optional[float]],
            selector: InfluenceSelector, budget: int) -> dict:
    """Differences of ``other``'s scores and selection from ``ref``'s."""
    scored = [k for k, v in ref.items() if v is not None]
    a = np.array([ref[k] for k in scored])
    b = np.array([other[k] for k in scored])
    rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-12)
    ranks = [x.argsort().argsort() for x in (a, b)]
    top = [set(selector.order(x, 0)[:budget]) for x in (ref, other)]
    return dict(
        scored=len(scored),
        same_scored_set=sorted(scored) == sorted(
            k for k, v in other.items() if v is not None),
        max_rel=float(rel.max()),
        median_rel=float(np.median(rel)),
        num_rel_above_1e3=int((rel > 1e-3).sum()),
        max_abs_over_std=float(np.abs(a - b).max() / a.std()),
        spearman=float(np.corrcoef(*ranks)[0, 1]),
        selection_changes=len(top[0] - top[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('work_dir', help='a work dir with a trained cycle')
    parser.add_argument('--cycle', type=int, default=0)
    parser.add_argument('--batch-sizes', type=int, nargs='+',
                        default=[1, 3, 8])
    parser.add_argument('--float64', action='store_true')
    parser.add_argument('--out', help='write the figures to this JSON file')
    args = parser.parse_args()
    register_all_modules()
    cfg = Config.fromfile(args.config)
    runner = ActiveLearningRunner(cfg, args.work_dir)
    state = ALState.load(osp.join(runner.work_dir, 'al_state.json'))
    # the pool as the cycle's selection saw it
    pool = PoolState(state.pool.pool_ids, {
        i: state.pool.cycle_of(i) for i in state.pool.labeled_ids
        if state.pool.cycle_of(i) <= args.cycle})
    seed = runner.al['seed'] * 1000 + args.cycle
    with trusted_checkpoint_loading():
        model = runner.load_model(state.record(args.cycle)['checkpoint'])
    adapter = runner.adapter
    model = adapter.prepare(model, seed=seed)
    keys = {k: v for k, v in runner.al['selector'].items() if k != 'type'}
    with tempfile.TemporaryDirectory() as tmp, (
            adapter.float64(model) if args.float64
            else contextlib.nullcontext()):
        context = SelectionContext(
            runner.cfg, pool, args.cycle, seed=seed, work_dir=tmp,
            model=model, adapter=adapter, num_workers=0)
        params = [p for _, p in adapter.parameters(model)]
        selector = InfluenceSelector(**keys)
        s_test = selector.s_test(context, params,
                                 selector.reference_gradient(context, params))
        ref = InfluenceSelector(**dict(keys, fast_path=False)).score(
            context, params, s_test)
        scores: List[tuple] = [
            (bs, InfluenceSelector(**dict(keys, batch_size=bs)).score(
                context, params, s_test)) for bs in args.batch_sizes]
    out = dict(dtype='float64' if args.float64 else 'float32',
               unlabeled=len(ref), budget=runner.al['budget'])
    for bs, other in scores:
        out[f'fast path, batch {bs} vs per-image'] = compare(
            ref, other, selector, runner.al['budget'])
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
