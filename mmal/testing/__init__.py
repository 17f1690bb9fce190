"""Helpers for tests and benchmarks; nothing here is needed at run time.

* :mod:`.benchmark`: timing, peak memory and comparisons of scores and
  selections (model-agnostic).
* :mod:`.precision`: float64 mode (:func:`float64_mode`), for checks
  that two paths compute the same numbers.
* :mod:`.official_isal`: the official ISAL code's computations written as
  the official code writes them (LiSSA with full-network autograd per step,
  official-style scoring), the reference that mmal's paths are checked
  against.
* :mod:`.influence_speed`: the speed benchmark of mmal's influence passes
  on FCOS (``tools/benchmarks/influence_speed.py``); import it explicitly.
* :mod:`.cls_influence_speed`: the speed benchmark of scoring on an
  image classifier (closed form, all-weights fast path, per-image
  autograd; ``tools/benchmarks/cls_influence_speed.py``); import it
  explicitly.
* :mod:`.selector_speed`: the entropy and core-set pool passes against
  plain batched inference (``tools/benchmarks/selector_speed.py``);
  import it explicitly.
* :mod:`.kcenter_speed`: k-center greedy on synthetic features
  (``tools/benchmarks/kcenter_speed.py``); import it explicitly.
* :mod:`.score_rounding`: how far float rounding moves a trained cycle's
  scores and selection (``tools/benchmarks/score_rounding.py``); import it
  explicitly.
"""
from .benchmark import (Blocks, PeakMemory, Scores, block_rel_diff,
                        compare_scores, fmt_list, load_average, ratio,
                        round_up, score_differences, sync, timed)
from .official_isal import full_loss, official_lissa, official_scores
from .precision import float64_computation, float64_mode

__all__ = [
    'Blocks', 'Scores', 'PeakMemory', 'load_average', 'sync', 'timed', 'ratio',
    'round_up', 'block_rel_diff', 'compare_scores', 'score_differences',
    'fmt_list', 'full_loss', 'official_lissa', 'official_scores',
    'float64_computation', 'float64_mode'
]
