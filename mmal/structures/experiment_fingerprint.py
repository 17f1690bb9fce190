"""What defines an active-learning experiment, recorded in ``al_state.json``.

A work dir holds one experiment. Its *fingerprint*, stored in
``meta['experiment']`` of the state, is everything that decides which
images are selected and what each cycle's model is: the selector (but for
the settings below), the adapter, the model, the training recipe, the data
(pool, val and test datasets, the evaluator; paths relative to
``data_root``), the initial size, the seed and the budgets. A rerun on the
same work dir whose fingerprint differs is refused, listing every
difference: it would mix two experiments in one state. Paths under the
work dir are recorded as ``{work_dir}/...`` (and under ``data_root`` as
``{data_root}/...``), so a work dir that was copied or moved continues.

*Settings* only change how the remaining work is done: the number of cycles,
the stop rule, the metric key, the annotation policy (a run that got past
the checks under one policy has data the other accepts too), the s_test
solver and the speed knobs of the selector, workers, batch sizes and the
data folder (``--data-root`` pointing at the same data: the pool's ids are
checked separately). A rerun may change them; each change is logged and
appended to ``meta['changes']`` with the cycle it applies from.
"""
import json
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

from mmengine.config import Config

from mmal.utils.config_utils import map_strings
from mmal.utils.errors import WorkDirError

FINGERPRINT_KEY = 'experiment'
SETTINGS_KEY = 'settings'
CHANGES_KEY = 'changes'

#: ``al_cfg`` keys that define the experiment (``selector`` and ``adapter``
#: are added below).
AL_DEFINING = ('initial_size', 'budget', 'cost_budget', 'seed',
               'train_from_scratch')
#: Config sections that define it: the model, its training and the data.
CFG_DEFINING = ('model', 'demo_data', 'train_dataloader.dataset',
                'val_dataloader.dataset', 'test_dataloader.dataset',
                'test_evaluator', 'train_cfg', 'optim_wrapper',
                'param_scheduler', 'auto_scale_lr')
#: ``train_cfg`` keys that only say when to validate.
TRAIN_CFG_SETTINGS = ('val_interval', 'val_begin', 'dynamic_intervals')
#: Selector keys that may change between reruns: the s_test solver and how
#: fast the same scores are computed.
SELECTOR_SETTINGS = ('solver', 'fast_path', 'batch_size', 'cache_mb',
                     'scale_check', 'num_workers')
#: ``al_cfg`` keys that may change between reruns.
AL_SETTINGS = ('num_cycles', 'target_metric', 'target_tolerance', 'metric_key',
               'validate_during_training', 'annotation_policy', 'num_workers')
#: Config keys that may change between reruns.
CFG_SETTINGS = ('data_root', 'train_dataloader.batch_size',
                'train_dataloader.num_workers')

_ROOT = '{data_root}'
_WORK_DIR = '{work_dir}'
_MAX_REPR = 200


def _jsonable(obj: Any) -> str:
    """A stable text for a value JSON cannot hold (a class in a config)."""
    if isinstance(obj, type) or callable(obj):
        return f'{obj.__module__}.{getattr(obj, "__qualname__", obj)}'
    return repr(obj)


def to_plain(obj: Any) -> Any:
    """``obj`` as it reads back from JSON: plain dicts with sorted keys,
    lists for tuples, so a recorded and a fresh fingerprint compare equal."""
    return json.loads(json.dumps(obj, sort_keys=True, default=_jsonable))


def _lookup(cfg: Dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for key in dotted.split('.'):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _relative_to_root(node: Any,
                      data_root: Optional[str],
                      token: str = _ROOT) -> Any:
    """Paths under ``data_root`` written as ``{data_root}/...`` (another
    folder: another ``token``)."""
    if not data_root:
        return node
    root = data_root.rstrip('/')

    def relative(s: str) -> str:
        if s.rstrip('/') == root:
            return token
        if s.startswith(root + '/'):
            return token + s[len(root):]
        return s

    return map_strings(node, relative)


def relative_to_work_dir(node: Any, work_dir: Optional[str]) -> Any:
    """Paths under ``work_dir`` written as ``{work_dir}/...``: what lives
    in the work dir moves with it."""
    return _relative_to_root(node, work_dir, _WORK_DIR)


def experiment_fingerprint(cfg: Config, al: Dict[str, Any]) -> Dict[str, Any]:
    """What defines the experiment of ``cfg`` (see the module docstring).

    Args:
        cfg (Config): The run's config (after ``--data-root`` and the demo
            data were applied).
        al (dict): Its resolved ``al_cfg`` (:func:`resolve_al_cfg`).

    Returns:
        dict: A JSON-ready dict with sorted keys.
    """
    plain = to_plain(cfg.to_dict())
    out = {key: _lookup(plain, key) for key in CFG_DEFINING}
    if isinstance(out['train_cfg'], dict):
        out['train_cfg'] = {
            k: v
            for k, v in out['train_cfg'].items() if k not in TRAIN_CFG_SETTINGS
        }
    out.update({f'al_cfg.{k}': al[k] for k in AL_DEFINING})
    out['al_cfg.adapter'] = al['adapter']
    out['al_cfg.selector'] = {
        k: v
        for k, v in dict(al['selector']).items() if k not in SELECTOR_SETTINGS
    }
    out = _relative_to_root(to_plain(out), cfg.get('data_root'))
    return relative_to_work_dir(out, cfg.get('work_dir'))


def run_settings(cfg: Config, al: Dict[str, Any]) -> Dict[str, Any]:
    """The settings of ``cfg`` that a rerun may change (JSON-ready)."""
    plain = to_plain(cfg.to_dict())
    out = {key: _lookup(plain, key) for key in CFG_SETTINGS}
    out.update({f'al_cfg.{k}': al[k] for k in AL_SETTINGS})
    selector = dict(al['selector'])
    out.update({
        f'al_cfg.selector.{k}': selector[k]
        for k in SELECTOR_SETTINGS if k in selector
    })
    return relative_to_work_dir(to_plain(out), cfg.get('work_dir'))


def _flatten(node: Any, prefix: str = '') -> Dict[str, Any]:
    if isinstance(node, dict) and node:
        out: Dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f'{prefix}.{key}' if prefix else key))
        return out
    return {prefix: node}


def differences(recorded: Dict[str, Any],
                current: Dict[str, Any]) -> List[Tuple[str, Any, Any]]:
    """Every leaf that differs, as ``(dotted key, recorded, current)``.

    A key missing on one side counts as None.
    """
    old, new = _flatten(recorded), _flatten(current)
    return [(key, old.get(key), new.get(key))
            for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)]


def short_repr(value: Any) -> str:
    """``repr(value)``, cut after 200 characters."""
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + '...'


def format_difference(key: str, old: Any, new: Any) -> str:
    """``key: recorded -> now``, with long values cut."""
    return f'{key}: {short_repr(old)} -> {short_repr(new)}'


def check_same_experiment(meta: Dict[str, Any], fingerprint: Dict[str, Any],
                          state_path: str) -> None:
    """Refuse a rerun whose fingerprint differs from the recorded one.

    Raises:
        WorkDirError: listing every difference (recorded -> now).
    """
    # a state written before paths were recorded relative to the work dir
    recorded = relative_to_work_dir(meta[FINGERPRINT_KEY],
                                    osp.dirname(osp.abspath(state_path)))
    diffs = differences(recorded, fingerprint)
    if diffs:
        lines = '\n  '.join(format_difference(*d) for d in diffs)
        raise WorkDirError(
            f'{state_path} holds another experiment; continuing it with this '
            f'config would mix the two. Differences (recorded -> now):\n  '
            f'{lines}\nUse a new --work-dir for a new experiment, or undo '
            'these changes to continue this one.')


def record_setting_changes(meta: Dict[str, Any], settings: Dict[str, Any],
                           cycle: int) -> List[Dict[str, Any]]:
    """Record in ``meta`` the settings that changed since the last run.

    Args:
        meta (dict): The state's meta, with recorded settings.
        settings (dict): This run's :func:`run_settings`.
        cycle (int): The first cycle with a step still to do: the changes
            apply from there.

    Returns:
        list[dict]: The new changes, each ``dict(cycle, key, from, to)``;
        also appended to ``meta['changes']``, and ``meta['settings']``
        becomes ``settings``.
    """
    changes = [{
        'cycle': cycle,
        'key': key,
        'from': old,
        'to': new
    } for key, old, new in differences(meta.get(SETTINGS_KEY, {}), settings)]
    meta.setdefault(CHANGES_KEY, []).extend(changes)
    meta[SETTINGS_KEY] = settings
    return changes
