"""The persistent state of an active-learning run (``al_state.json``)."""
import os
from typing import Any, Dict, List, Optional

from mmal.utils.fileio import atomic_write_json, read_json
from .experiment_fingerprint import FINGERPRINT_KEY
from .pool_state import PoolState

STATE_FORMAT = 1
STEPS = ('train', 'evaluate', 'select')
#: Record keys of states written before the task-neutral names, and the
#: names they have now (read by :meth:`ALState.load`).
RENAMED_KEYS = dict(
    boxes='cost',
    mAP='metric',
    mAP_points_per_10k_boxes='points_per_10k_cost',
    selected_boxes='selected_cost')


def upgrade_record(rec: dict) -> dict:
    """A cycle record with the old detection-only keys renamed (in place).

    States written before mmal knew classification call the annotation
    cost ``boxes`` and the metric ``mAP``; both were already fractions and
    box counts, so only the names change (and ``cost_unit`` is 'boxes').
    """
    if 'boxes' in rec and 'cost' not in rec:
        rec.setdefault('cost_unit', 'boxes')
    for old, new in RENAMED_KEYS.items():
        if old in rec and new not in rec:
            rec[new] = rec.pop(old)
    return rec


#: Fingerprint keys of states written before a config key was renamed.
RENAMED_FINGERPRINT_KEYS = {'al_cfg.budget_boxes': 'al_cfg.cost_budget'}


def upgrade_meta(meta: dict) -> dict:
    """A state's ``meta`` with renamed config keys renamed in its
    experiment fingerprint (in place), so a run recorded under the old name
    continues and compares with new runs."""
    experiment = meta.get(FINGERPRINT_KEY)
    if isinstance(experiment, dict):
        for old, new in RENAMED_FINGERPRINT_KEYS.items():
            if old in experiment and new not in experiment:
                experiment[new] = experiment.pop(old)
    return meta


class ALState:
    """Pool state plus one record per cycle.

    A cycle record holds the finished steps (``train``, ``evaluate``,
    ``select``), the checkpoint, the number of labeled images and their
    annotation ``cost`` (in ``cost_unit``: boxes or images) it was trained
    on, its metrics (``metric``: the reported one as a fraction, named by
    ``metric_key``; ``points_per_10k_cost``: its points per 10k cost) and
    the number and cost of the images it selected.

    Args:
        pool (PoolState): Labeled / unlabeled ids.
        meta (dict): Run-level facts (seed, config name, ...).
        cycles (list[dict], optional): Cycle records.
    """

    def __init__(self,
                 pool: PoolState,
                 meta: Dict[str, Any],
                 cycles: Optional[List[dict]] = None) -> None:
        self.pool = pool
        self.meta = dict(meta)
        self.cycles: List[dict] = list(cycles or [])

    def record(self, cycle: int) -> dict:
        """The record of ``cycle``, created (empty) when missing."""
        while len(self.cycles) <= cycle:
            self.cycles.append(dict(cycle=len(self.cycles), done=[]))
        return self.cycles[cycle]

    def is_done(self, cycle: int, step: str) -> bool:
        return cycle < len(self.cycles) and step in self.cycles[cycle]['done']

    def mark_done(self, cycle: int, step: str, **fields: Any) -> None:
        """Record that ``step`` of ``cycle`` finished, with its outputs."""
        if step not in STEPS:
            raise ValueError(f'unknown step {step!r}; steps are {STEPS}')
        rec = self.record(cycle)
        rec.update(fields)
        if step not in rec['done']:
            rec['done'].append(step)

    def to_dict(self) -> dict:
        return dict(
            format=STATE_FORMAT,
            meta=self.meta,
            cycles=self.cycles,
            pool=self.pool.to_dict())

    def save(self, path: str) -> None:
        """Write atomically (temporary file + rename)."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str) -> 'ALState':
        data = read_json(path)
        if data.get('format') != STATE_FORMAT:
            raise ValueError(
                f'{path}: unsupported state format '
                f'{data.get("format")!r} (expected {STATE_FORMAT})')
        return cls(
            PoolState.from_dict(data['pool']), upgrade_meta(data['meta']),
            [upgrade_record(rec) for rec in data['cycles']])

    @staticmethod
    def exists(path: str) -> bool:
        return os.path.isfile(path)
