"""Helpers for tests and benchmarks; nothing here is needed at run time.

* :mod:`.benchmark`: timing, peak memory and comparisons of scores and
  selections (model-agnostic).
* :mod:`.precision`: float64 mode (:func:`float64_mode`), for checks
  that two paths compute the same numbers.
* :mod:`.official_isal`: the official ISAL code's computations written as
  the official code writes them (LiSSA with full-network autograd per step,
  official-style scoring), the reference that mmal's paths are checked
  against.
* :mod:`.scenario`: an untrained model and a cycle-0 selection context on
  a config's data (:func:`~.scenario.selection_scenario`), what the
  benchmarks and the tests start from; import it explicitly.

The benchmarks' scenarios themselves live beside their scripts, in
``tools/benchmarks/scenarios/``.
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
