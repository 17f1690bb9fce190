"""Stable sample ids.

Active learning state (which images are labeled, in which cycle) must not be
keyed by *position* in a dataset: mmengine datasets filter their data list
(``filter_cfg``), so positions move when the config or the annotation files
change. mmal keys every sample by a stable id taken from the sample's own
annotation instead:

* ``str(data_info['img_id'])`` when the sample has an ``img_id``: the integer
  image id of a COCO file (``'397133'``), the file stem of a Pascal VOC image
  (``'2008_000002'``);
* otherwise the sample's ``img_path`` (classification datasets).

The same function works on the ``metainfo`` of a packed ``DetDataSample``
(``PackDetInputs`` keeps ``img_id`` and ``img_path``), so a model's output can
be mapped back to its id.
"""
from typing import Any, List, Mapping

from mmal.utils.errors import DataError

__all__ = ['sample_id', 'collect_sample_ids']


def sample_id(data_info: Mapping[str, Any]) -> str:
    """Return the stable id of one sample.

    Args:
        data_info (Mapping[str, Any]): The data info of one sample, as
            returned by ``BaseDataset.get_data_info``, or the metainfo of a
            packed data sample. Must hold ``img_id`` or ``img_path``.

    Returns:
        str: ``str(data_info['img_id'])`` if present and not None, else
        ``str(data_info['img_path'])``.

    Raises:
        KeyError: If the data info has neither ``img_id`` nor ``img_path``.
    """
    img_id = data_info.get('img_id')
    if img_id is not None:
        return str(img_id)
    img_path = data_info.get('img_path')
    if img_path is not None:
        return str(img_path)
    raise KeyError('Cannot make a stable sample id: the data info has neither '
                   f'"img_id" nor "img_path" (keys: {sorted(data_info)}).')


def collect_sample_ids(dataset: Any) -> List[str]:
    """Return the stable ids of all samples of a dataset, in its order.

    Args:
        dataset: A fully initialised mmengine ``BaseDataset`` (or any object
            with ``__len__`` and ``get_data_info(i)``, e.g. a
            ``ConcatDataset``).

    Returns:
        list[str]: ``ids[i]`` is the id of ``dataset.get_data_info(i)``;
        length ``len(dataset)``.

    Raises:
        DataError: If two samples share an id (a ``ValueError``); the
            message names both image paths.
    """
    ids: List[str] = []
    first_path = {}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        sid = sample_id(info)
        path = info.get('img_path', f'<sample {i}>')
        if sid in first_path:
            raise DataError(
                f'Two samples share the id {sid!r}: {first_path[sid]!r} and '
                f'{path!r}. Sample ids must be unique (check for an image '
                'listed twice, or datasets concatenated with clashing ids).')
        first_path[sid] = path
        ids.append(sid)
    return ids
