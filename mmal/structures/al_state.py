"""The persistent state of an active-learning run (``al_state.json``)."""
import os
from typing import Any, Dict, List, Optional

from mmal.utils.fileio import atomic_write_json, read_json
from .pool_state import PoolState

STATE_FORMAT = 1
STEPS = ('train', 'evaluate', 'select')


class ALState:
    """Pool state plus one record per cycle.

    A cycle record holds the finished steps (``train``, ``evaluate``,
    ``select``), the checkpoint, the number of labeled images and boxes it
    was trained on, its metrics and the ids it selected.

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
            raise ValueError(f'{path}: unsupported state format '
                             f'{data.get("format")!r} (expected {STATE_FORMAT})')
        return cls(PoolState.from_dict(data['pool']), data['meta'],
                   data['cycles'])

    @staticmethod
    def exists(path: str) -> bool:
        return os.path.isfile(path)
