"""Rankings from per-image scores, with a policy for unscored images."""
from typing import Dict, List, Optional

import numpy as np

#: What to do with images a selector cannot score (``None``):
#: ``'random'``: ranked after every scored image, in seeded random order
#: (picked only when too few images were scored); ``'exclude'``: never
#: picked.
UNSCORED_POLICIES = ('random', 'exclude')


def check_unscored_policy(policy: str) -> str:
    """``policy`` if it is one of :data:`UNSCORED_POLICIES`, else raise
    ``ValueError``."""
    if policy not in UNSCORED_POLICIES:
        raise ValueError(f'unscored must be one of {UNSCORED_POLICIES}, '
                         f'got {policy!r}')
    return policy


def order_by_score(scores: Dict[str, Optional[float]],
                   seed: int,
                   descending: bool,
                   unscored: str = 'random') -> List[str]:
    """Ids ranked by score, then the unscored ones by ``unscored``.

    Equal scores are ordered by id, and the unscored ids are shuffled by a
    generator seeded with ``seed`` over their sorted list, so the ranking
    depends only on the scores, not on the order of ``scores``.

    Args:
        scores (dict[str, float | None]): Id -> score; None: unscored.
        seed (int): The selection's seed.
        descending (bool): Highest score first.
        unscored (str): One of :data:`UNSCORED_POLICIES`.

    Returns:
        list[str]: The ranking, best first.
    """
    check_unscored_policy(unscored)
    sign = -1.0 if descending else 1.0
    scored = sorted((sign * v, k) for k, v in scores.items() if v is not None)
    ranking = [k for _, k in scored]
    if unscored == 'random':
        rest = sorted(k for k, v in scores.items() if v is None)
        perm = np.random.default_rng([seed, 2]).permutation(len(rest))
        ranking += [rest[i] for i in perm]
    return ranking
