"""The ``al_cfg`` block of a config: keys, defaults and checks."""
import copy
import math
import warnings
from typing import Any, Dict, Union

from mmal.utils.errors import ConfigError, ConfigKeyError

#: Every key of ``al_cfg`` with its default (None: must be set).
AL_CFG_DEFAULTS: Dict[str, Any] = dict(
    initial_size=None,  # images labeled at random (seeded) before cycle 0
    budget=None,  # images added per cycle (int, or a fraction of the pool)
    cost_budget=None,  # optional cap on the annotation cost added per
    # cycle, in the task's cost unit (boxes for detection)
    num_cycles=None,  # trainings; a selection follows all but the last
    seed=0,  # seeds the initial split, training and selection
    train_from_scratch=True,  # False: cycle k starts from cycle k-1's weights
    validate_during_training=False,  # keep the config's val loop in training
    annotation_policy='error',  # 'error' | 'drop': corrupt boxes, bad images
    metric_key=None,  # metric reported; None: the task's (COCO/VOC mAP, top-1)
    target_metric=None,  # stop once metric >= target_metric - tolerance
    target_tolerance=0.0,  # e.g. the paper's 22 +- 0.3 AP: 0.22 and 0.003
    num_workers=2,  # data loading workers of the selection passes
    unlabeled_subset=None,  # rank a seeded random subset of this many
    # unlabeled images (learning loss on CIFAR: 10,000); None: all of them
    adapter=None,  # model adapter (needed by model-based selectors)
    task=None,  # None: the adapter's task, else by default_scope
    selector=None,  # the query strategy
    annotation=None,  # None: simulation; a dict: annotation mode (labels
    # come from people; see mmal/engine/annotation_mode.py)
)

ANNOTATION_POLICIES = ('error', 'drop')
#: Keys renamed since, still read (with a deprecation warning).
RENAMED_AL_KEYS = dict(budget_boxes='cost_budget')


def resolve_al_cfg(cfg: Any, source: str = 'the config') -> Dict[str, Any]:
    """``al_cfg`` of a config with defaults filled in, after checks.

    Raises:
        ConfigKeyError: no ``al_cfg``, or an unknown key in it (a
            ``KeyError``).
        ConfigError: a missing or out-of-range value (a ``ValueError``).
    """
    if cfg.get('al_cfg') is None:
        raise ConfigKeyError(
            f'{source} has no `al_cfg`: it is not an active-learning config. '
            'Inherit one of configs/isal_*.py or configs/random_*.py, or add '
            'an al_cfg block (see docs/en/user_guides/config.md).')
    al = copy.deepcopy(dict(cfg['al_cfg']))
    for old, new in RENAMED_AL_KEYS.items():
        if old in al:
            if new in al:
                raise ConfigError(
                    f'al_cfg.{old} and al_cfg.{new} are both set in {source}'
                    f': {old} is the old name of {new}; keep {new}')
            warnings.warn(
                f'al_cfg.{old} (in {source}) is deprecated: it is now '
                f'al_cfg.{new}', DeprecationWarning)
            al[new] = al.pop(old)
    unknown = sorted(set(al) - set(AL_CFG_DEFAULTS))
    if unknown:
        raise ConfigKeyError(
            f'unknown al_cfg keys in {source}: {unknown}; known '
            f'keys: {sorted(AL_CFG_DEFAULTS)}')
    out = {k: al.get(k, d) for k, d in AL_CFG_DEFAULTS.items()}
    if out['annotation'] is not None:  # the labeled file says what is
        out['initial_size'] = None  # labeled before cycle 0
    for key in ('initial_size', 'budget', 'num_cycles', 'selector'):
        if out[key] is None and not (key == 'initial_size'
                                     and out['annotation'] is not None):
            raise ConfigError(f'al_cfg.{key} must be set in {source}')
    for key in ('initial_size', 'budget'):
        value = out[key]
        if value is None:  # initial_size in annotation mode
            continue
        if not (isinstance(value, int) and value > 0
                or isinstance(value, float) and 0 < value <= 1):
            raise ConfigError(
                f'al_cfg.{key} must be a positive integer (images) or a '
                f'fraction of the pool in (0, 1] (a float), got {value!r} in '
                f'{source}')
    if not isinstance(out['num_cycles'], int) or out['num_cycles'] <= 0:
        raise ConfigError('al_cfg.num_cycles must be a positive integer, got '
                          f'{out["num_cycles"]!r} in {source}')
    if out['cost_budget'] is not None and (not isinstance(
            out['cost_budget'], int) or out['cost_budget'] <= 0):
        raise ConfigError('al_cfg.cost_budget must be None or a positive '
                          f'integer, got {out["cost_budget"]!r} in {source}')
    target, tol = out['target_metric'], out['target_tolerance']
    if target is not None and not isinstance(target, (int, float)):
        raise ConfigError('al_cfg.target_metric must be None or a number (in '
                          f'the units of the metric, e.g. 0.22 for 22 AP), '
                          f'got {target!r} in {source}')
    if not isinstance(tol, (int, float)) or tol < 0:
        raise ConfigError('al_cfg.target_tolerance must be a number >= 0, got '
                          f'{tol!r} in {source}')
    if out['annotation_policy'] not in ANNOTATION_POLICIES:
        raise ConfigError(f'al_cfg.annotation_policy must be one of '
                          f'{ANNOTATION_POLICIES}, got '
                          f'{out["annotation_policy"]!r} in {source}')
    if not isinstance(out['selector'], dict) or 'type' not in out['selector']:
        raise ConfigError(f'al_cfg.selector must be a dict with a `type`, got '
                          f'{out["selector"]!r} in {source}')
    subset = out['unlabeled_subset']
    if subset is not None and (not isinstance(subset, int) or subset <= 0):
        raise ConfigError('al_cfg.unlabeled_subset must be None or a positive '
                          f'integer (images), got {subset!r} in {source}')
    if (subset is not None and isinstance(out['budget'], int)
            and subset < out['budget']):
        raise ConfigError(
            f'al_cfg.unlabeled_subset ({subset}) is smaller than al_cfg.budget'
            f' ({out["budget"]}) in {source}: a selection could not fill its '
            'budget')
    return out


def num_images(size: Union[int, float], pool_size: int) -> int:
    """Images meant by ``al_cfg.initial_size`` / ``al_cfg.budget``.

    An int is a number of images; a float in (0, 1] a fraction of the pool,
    rounded up (``0.1`` of 117,266 COCO images is 11,727), so that ten
    steps of ``0.1`` reach the whole pool.

    Args:
        size (int | float): The configured value.
        pool_size (int): Images in the pool.

    Returns:
        int: At least 1.
    """
    if isinstance(size, float):
        # round() first: 0.1 * 117270 is 11727.000000000002 in floats
        return max(1, math.ceil(round(size * pool_size, 6)))
    return int(size)
