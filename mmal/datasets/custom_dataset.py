"""mmpretrain's ``CustomDataset`` with sample ids that survive moving the
data.

mmpretrain's ``CustomDataset`` (a folder per class, or an annotation file of
``path label`` lines) gives each sample an ``img_path`` joined with
``data_root``, so the path, and with it mmal's sample id, changes when the
data moves. :class:`CustomDataset` adds ``img_id``: the image path relative
to ``data_root`` (``'train/circle/00017.png'``), or relative to the image
prefix (``data_prefix``) when ``data_root`` is empty; always with ``/``
separators.

Config use::

    dataset = dict(type='mmal.CustomDataset', data_root='data/shapes_cls',
                   data_prefix='train', pipeline=[...])
"""
import os
import os.path as osp
from typing import List

from mmpretrain.datasets import CustomDataset as _MMPretrainCustomDataset

from mmal.registry import DATASETS
from mmal.utils.errors import DataError

__all__ = ['CustomDataset']


@DATASETS.register_module()
class CustomDataset(_MMPretrainCustomDataset):
    """mmpretrain's ``CustomDataset`` whose samples also hold a relative
    ``img_id``.

    Takes the same arguments as ``mmpretrain.datasets.CustomDataset``
    (``data_root``, ``data_prefix``, ``ann_file``, ``with_label``,
    ``extensions``, ``metainfo``, ``lazy_init`` and mmengine's
    ``BaseDataset`` arguments) and loads the same samples in the same order.

    ``img_id`` is ``img_path`` relative to ``data_root``, or to the image
    prefix when ``data_root`` is empty (the path as given when both are
    empty), with ``/`` separators.

    Raises:
        DataError: If an image lies outside that folder (an absolute path or
            ``..`` in the annotation file): its id would change with the
            data's location.
    """

    def load_data_list(self) -> List[dict]:
        """Load the samples of mmpretrain's ``CustomDataset`` and add
        ``img_id``.

        Returns:
            list[dict]: ``img_path``, ``gt_label`` (with labels) and
            ``img_id`` per sample.
        """
        data_list = super().load_data_list()
        base = self.data_root or self.img_prefix
        for info in data_list:
            info['img_id'] = self._relative_id(info['img_path'], base)
        return data_list

    def _relative_id(self, img_path: str, base: str) -> str:
        """``img_path`` relative to ``base``, with ``/`` separators."""
        if not base:
            rel = osp.normpath(img_path)
        else:
            rel = osp.relpath(img_path, base)
            if osp.isabs(rel) or rel == '..' or rel.startswith('..' + os.sep):
                source = (f'listed in {self.ann_file}'
                          if self.ann_file else 'found by the folder scan')
                raise DataError(
                    f'Image {img_path} ({source}) is outside {base}, the '
                    'folder its sample id is relative to; the id would '
                    'change when the data moves. Put the images under '
                    'data_root and list them relative to data_prefix.')
        return rel.replace(os.sep, '/')
