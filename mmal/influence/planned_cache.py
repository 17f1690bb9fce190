"""A cache for a sequence of accesses known in advance (LiSSA chains).

LiSSA visits labeled images in an order fixed by its seed before the first
step, so the cache can evict the entry whose next use is furthest away
(Belady's rule, optimal for a known sequence) and compute the entries of
several upcoming misses in one batch.
"""
import bisect
from collections import defaultdict, deque
from typing import (Any, Callable, Dict, Hashable, Iterable, Iterator, List,
                    Sequence, Tuple)

NEVER = float('inf')


class PlannedCache:
    """Entries for ``sequence`` of keys, computed in batches, kept by plan.

    Args:
        sequence (Sequence[Hashable]): The keys in the order they will be
            read (repeats allowed).
        loaded (Iterable): One loaded item per position of ``sequence`` (a
            loader over the same sequence): a miss computes its entry from
            it; items of later positions are read ahead to batch misses.
        compute (Callable): ``compute([(key, item), ...]) -> {key: entry}``.
        size (Callable): ``size(entry) -> bytes``.
        max_bytes (float): Budget; the entries needed soonest are kept.
            An entry read now stays until it has been returned.
        batch_size (int): At most this many misses computed together,
            taken among the next ``4 * batch_size`` positions.
    """

    def __init__(self,
                 sequence: Sequence[Hashable],
                 loaded: Iterable,
                 compute: Callable[[List[Tuple[Hashable, Any]]], Dict[Hashable,
                                                                      Any]],
                 size: Callable[[Any], int],
                 max_bytes: float,
                 batch_size: int = 1) -> None:
        self.sequence = list(sequence)
        self.loaded = iter(loaded)
        self.compute = compute
        self.size = size
        self.max_bytes = float(max_bytes)
        self.batch_size = max(1, int(batch_size))
        self.positions: Dict[Hashable, List[int]] = defaultdict(list)
        for pos, key in enumerate(self.sequence):
            self.positions[key].append(pos)
        self.entries: Dict[Hashable, Any] = {}
        self.bytes: Dict[Hashable, int] = {}
        self.stats = dict(
            hits=0, misses=0, computed=0, evicted=0, peak_bytes=0)

    def next_use(self, key: Hashable, pos: int) -> float:
        """First position >= ``pos`` that reads ``key`` (inf: never)."""
        uses = self.positions.get(key, [])
        i = bisect.bisect_left(uses, pos)
        return uses[i] if i < len(uses) else NEVER

    def __iter__(self) -> Iterator[Any]:
        """The entry of every position of the sequence, in order."""
        ahead: deque = deque()
        window = 4 * self.batch_size
        for pos, key in enumerate(self.sequence):
            item = ahead.popleft() if ahead else next(self.loaded)
            if key in self.entries:
                self.stats['hits'] += 1
            else:
                self.stats['misses'] += 1
                while len(ahead) < window - 1 and pos + 1 + len(ahead) < len(
                        self.sequence):
                    ahead.append(next(self.loaded))
                todo = {key: item}
                for k, it in zip(self.sequence[pos + 1:], ahead):
                    if len(todo) >= self.batch_size:
                        break
                    if k not in self.entries and k not in todo:
                        todo[k] = it
                new = self.compute(list(todo.items()))
                for k, entry in new.items():
                    self.entries[k] = entry
                    self.bytes[k] = int(self.size(entry))
                self.stats['computed'] += len(new)
            self.stats['peak_bytes'] = max(self.stats['peak_bytes'],
                                           sum(self.bytes.values()))
            entry = self.entries[key]
            self._evict(pos + 1, keep=key)
            yield entry

    def _evict(self, pos: int, keep: Hashable) -> None:
        """Drop entries never read again, then the furthest-needed ones
        while over budget (never ``keep``, which is being returned)."""
        for k in [
                k for k in self.entries
                if k != keep and self.next_use(k, pos) == NEVER
        ]:
            self._drop(k)
        total = sum(self.bytes.values())
        order = sorted((k for k in self.entries if k != keep),
                       key=lambda k: self.next_use(k, pos),
                       reverse=True)
        for k in order:
            if total <= self.max_bytes:
                break
            total -= self.bytes[k]
            self._drop(k)
        if keep in self.entries and self.next_use(keep, pos) == NEVER:
            self._drop(keep)  # the caller holds it; nobody reads it again

    def _drop(self, key: Hashable) -> None:
        del self.entries[key]
        del self.bytes[key]
        self.stats['evicted'] += 1
