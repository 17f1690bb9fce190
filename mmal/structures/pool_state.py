"""The state of the active-learning pool, keyed by stable sample ids."""
import random
from typing import Dict, Iterable, List, Optional, Sequence


class PoolState:
    """Which samples of a pool are labeled, and in which cycle.

    Samples are identified by stable ids (see
    :func:`mmal.datasets.sample_id`), never by dataset positions, so the state
    survives a change of dataset order or filtering between cycles.

    Args:
        pool_ids (Sequence[str]): Ids of every sample of the pool.
        labeled (dict[str, int], optional): Id -> cycle in which it was
            labeled. Defaults to no labeled sample.
    """

    def __init__(self,
                 pool_ids: Sequence[str],
                 labeled: Optional[Dict[str, int]] = None) -> None:
        self._pool_ids = [str(i) for i in pool_ids]
        self._pool_set = set(self._pool_ids)
        if len(self._pool_set) != len(self._pool_ids):
            seen, dups = set(), []
            for i in self._pool_ids:
                if i in seen:
                    dups.append(i)
                seen.add(i)
            raise ValueError(f'duplicate sample ids in the pool: {dups[:10]}')
        self._labeled: Dict[str, int] = {}
        for sid, cycle in (labeled or {}).items():
            self._check_known([sid])
            self._labeled[str(sid)] = int(cycle)

    # -- construction -----------------------------------------------------
    @classmethod
    def initial(cls, pool_ids: Sequence[str], size: int,
                seed: int) -> 'PoolState':
        """Label ``size`` samples drawn at random (seeded) in cycle 0.

        The draw depends only on the set of ids and the seed, not on the
        order in which the dataset lists them.
        """
        state = cls(pool_ids)
        if size <= 0:
            raise ValueError(f'initial labeled size must be > 0, got {size}')
        if size > len(state._pool_ids):
            raise ValueError(
                f'initial labeled size {size} is larger than the pool '
                f'({len(state._pool_ids)} samples)')
        ordered = sorted(state._pool_ids)
        chosen = random.Random(seed).sample(ordered, size)
        state.label(chosen, cycle=0)
        return state

    # -- queries ----------------------------------------------------------
    @property
    def pool_ids(self) -> List[str]:
        """All ids of the pool, in pool order."""
        return list(self._pool_ids)

    @property
    def labeled_ids(self) -> List[str]:
        """Labeled ids, in pool order."""
        return [i for i in self._pool_ids if i in self._labeled]

    @property
    def unlabeled_ids(self) -> List[str]:
        """Unlabeled ids, in pool order."""
        return [i for i in self._pool_ids if i not in self._labeled]

    def cycle_of(self, sid: str) -> Optional[int]:
        """Cycle in which ``sid`` was labeled, or None if unlabeled."""
        self._check_known([sid])
        return self._labeled.get(str(sid))

    def ids_labeled_in(self, cycle: int) -> List[str]:
        """Ids labeled in a given cycle, in pool order."""
        return [i for i in self._pool_ids if self._labeled.get(i) == cycle]

    def __len__(self) -> int:
        return len(self._pool_ids)

    @property
    def num_labeled(self) -> int:
        return len(self._labeled)

    # -- updates ----------------------------------------------------------
    def label(self, ids: Iterable[str], cycle: int) -> None:
        """Mark ``ids`` as labeled in ``cycle``.

        Raises:
            KeyError: an id is not in the pool.
            ValueError: an id is given twice or is already labeled.
        """
        ids = [str(i) for i in ids]
        self._check_known(ids)
        if len(set(ids)) != len(ids):
            raise ValueError(f'ids selected twice in cycle {cycle}: '
                             f'{sorted({i for i in ids if ids.count(i) > 1})}')
        already = [i for i in ids if i in self._labeled]
        if already:
            raise ValueError(
                f'ids already labeled (cycle {self._labeled[already[0]]}) '
                f'cannot be labeled again in cycle {cycle}: {already[:10]}')
        for i in ids:
            self._labeled[i] = int(cycle)

    def remove(self, ids: Iterable[str]) -> None:
        """Take unlabeled ids out of the pool (e.g. images that no longer
        decode): they can never be labeled or selected.

        Raises:
            KeyError: an id is not in the pool.
            ValueError: an id is labeled (the finished cycles used it).
        """
        ids = {str(i) for i in ids}
        self._check_known(ids)
        labeled = sorted(i for i in ids if i in self._labeled)
        if labeled:
            raise ValueError(f'labeled ids cannot leave the pool: '
                             f'{labeled[:10]}')
        self._pool_ids = [i for i in self._pool_ids if i not in ids]
        self._pool_set -= ids

    def _check_known(self, ids: Iterable[str]) -> None:
        unknown = [i for i in ids if str(i) not in self._pool_set]
        if unknown:
            raise KeyError(f'ids not in the pool: {unknown[:10]}')

    # -- serialisation ----------------------------------------------------
    def to_dict(self) -> dict:
        return dict(pool_ids=list(self._pool_ids), labeled=dict(self._labeled))

    @classmethod
    def from_dict(cls, data: dict) -> 'PoolState':
        return cls(data['pool_ids'], data.get('labeled', {}))
