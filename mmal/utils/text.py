"""Words in messages."""


def counted(num: int, noun: str, plural: str = '') -> str:
    """``'1 image'``, ``'2 images'``, ``'0 boxes'`` (``plural`` defaults to
    ``noun + 's'``)."""
    return f'{num} {noun if num == 1 else (plural or noun + "s")}'
