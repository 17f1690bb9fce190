"""Progress lines for long passes over the pool."""
import time
from typing import Any, Iterable, Iterator, Optional

from mmengine.logging import print_log


def track_progress(iterable: Iterable,
                   total: int,
                   desc: str,
                   logger: Any = 'current',
                   interval: Optional[int] = None) -> Iterator:
    """Yield from ``iterable``, logging count, rate and ETA as it goes.

    Args:
        iterable (Iterable): The items.
        total (int): Number of items expected.
        desc (str): What the pass does, e.g. ``'scoring unlabeled images'``.
        logger: mmengine logger or its name.
        interval (int, optional): Items between lines. Defaults to about
            one line per 10% (at least every item for tiny passes).
    """
    interval = interval or max(1, total // 10)
    start = time.time()
    print_log(f'{desc}: {total} images', logger)
    count = 0
    for item in iterable:
        yield item
        count += 1
        if count % interval == 0 or count == total:
            elapsed = time.time() - start
            rate = count / max(elapsed, 1e-9)
            eta = (total - count) / max(rate, 1e-9)
            print_log(
                f'{desc}: {count}/{total} ({rate:.2f} img/s, '
                f'elapsed {elapsed:.0f}s, eta {eta:.0f}s)', logger)
