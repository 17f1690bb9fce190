"""What a run and an experiment leave on disk, read back: file names,
whether a run is finished, and what runs compared in one experiment must
share. Shared by the driver (:mod:`mmal.engine`) and the report
(:mod:`mmal.analysis`), which reads runs without running them."""
from typing import Any, Dict, Optional, Sequence

from mmal.utils.errors import WorkDirError
from .experiment_fingerprint import SETTINGS_KEY, differences, short_repr

#: A run's state, in its work dir.
STATE_FILE = 'al_state.json'
#: The ``al_cfg`` keys of the stop rule, recorded with a stop.
STOP_SETTINGS = ('num_cycles', 'target_metric', 'target_tolerance')
#: The plan of the last command, in the experiment's root.
PLAN_FILE = 'experiment.json'
#: Fingerprint keys that runs compared with each other must share: the
#: data (datasets without their pipelines), the metric and the sizes.
COMPARED_KEYS = ('demo_data', 'train_dataloader.dataset',
                 'test_dataloader.dataset', 'test_evaluator',
                 'al_cfg.initial_size', 'al_cfg.budget', 'al_cfg.cost_budget')


def comparison_key(experiment: Dict[str, Any]) -> Dict[str, Any]:
    """What runs compared in one experiment must share.

    Args:
        experiment (dict): A run's experiment fingerprint
            (``meta['experiment']`` of its state).

    Returns:
        dict: The :data:`COMPARED_KEYS` of it, datasets without their
        ``pipeline`` (augmentation is part of the training recipe).
    """
    out = {}
    for key in COMPARED_KEYS:
        value = experiment.get(key)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != 'pipeline'}
        out[key] = value
    return out


def compare_keys(keys: Dict[str, Dict[str, Any]], what: str) -> None:
    """Refuse runs whose :func:`comparison_key` differ.

    Args:
        keys (dict): Run name -> its comparison key.
        what (str): What the runs are, for the message.

    Raises:
        WorkDirError: naming each differing key and the runs' values.
    """
    names = list(keys)
    first = names[0]
    lines = []
    for name in names[1:]:
        for key, old, new in differences(keys[first], keys[name]):
            lines.append(f'{key}: {first}: {short_repr(old)}; '
                         f'{name}: {short_repr(new)}')
    if lines:
        raise WorkDirError(
            f'{what} are not one experiment: they must share the data, the '
            'metric, the initial size and the budgets, and differ in:\n  ' +
            '\n  '.join(lines))


def is_finished(meta: dict,
                cycles: Sequence[dict],
                al: Optional[dict] = None) -> bool:
    """Whether a run's state says it has nothing left to do.

    Finished: the run recorded a stop (``meta['stop']``) under the same
    stop rule as ``al`` (by default the settings recorded in the state);
    a run that stopped after ``num_cycles=3`` is unfinished for
    ``num_cycles=5``. A state from before mmal recorded stops counts as
    finished when its cycle ``num_cycles - 1`` is evaluated.

    Args:
        meta (dict): The state's ``meta``.
        cycles (Sequence[dict]): Its cycle records.
        al (dict, optional): The stop rule to check against (a resolved
            ``al_cfg``); None: the recorded settings.

    Returns:
        bool
    """
    if al is None:
        settings = meta.get(SETTINGS_KEY, {})
        al = {k: settings.get(f'al_cfg.{k}') for k in STOP_SETTINGS}
    stop = meta.get('stop')
    if stop is not None:
        if stop['reason'] == 'pool_labeled':
            return True
        return all(stop.get(k) == al.get(k) for k in STOP_SETTINGS)
    num = al.get('num_cycles')
    return bool(num) and len(cycles) >= num and \
        'evaluate' in cycles[num - 1]['done']
