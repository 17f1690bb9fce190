"""CIFAR-10 / CIFAR-100 with stable sample ids, read from local files only.

mmpretrain's ``CIFAR10`` / ``CIFAR100`` give their samples no id, download
the archive when it is missing and wait at ``dist.barrier()`` while loading
(so building them on a subset of ranks hangs). mmal's versions keep
everything else (classes, ``split``, ``test_mode``, pipeline) and change the
loading:

* the python-pickle batch files are read from
  ``<data_root>/cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``, ``batches.meta``) or ``<data_root>/cifar-100-python/``
  (``train``, ``test``, ``meta``); nothing is downloaded and no rank waits
  for another;
* each sample gets ``img_id = '<split>/<index:05d>'`` (``'train/00042'``),
  its position in the split's batch files concatenated in their canonical
  order, so the id does not depend on ``indices=``, filtering or order;
* with ``check_md5=True`` (the default) each file read is checked against
  the md5 of the official release (mmpretrain's table) before it is
  unpickled.

Config use::

    train_dataloader = dict(dataset=dict(
        type='mmal.CIFAR10', data_root='data/cifar10', split='train',
        pipeline=[...]))
"""
import hashlib
import pickle
from typing import List, Optional, Tuple

import numpy as np
from mmengine.fileio import exists, get, join_path
from mmpretrain.datasets import CIFAR10 as _MMPretrainCIFAR10
from mmpretrain.datasets import CIFAR100 as _MMPretrainCIFAR100

from mmal.registry import DATASETS
from mmal.utils.errors import ConfigError, DataError, MissingFileError

__all__ = ['CIFAR10', 'CIFAR100']

_IMG_SHAPE = (3, 32, 32)  # CHW, as stored in the batch files
_IMG_BYTES = 3 * 32 * 32


class _LocalCIFARMixin:
    """Loading shared by :class:`CIFAR10` and :class:`CIFAR100`.

    Comes before mmpretrain's class in the bases, which provides
    ``base_folder``, ``train_list``, ``test_list`` (``[file name, md5]``
    pairs) and ``meta`` (``filename``, ``key``, ``md5``); the subclass sets
    ``label_key``, the key of the labels in a batch file.
    """

    label_key: str = 'labels'

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 metainfo: Optional[dict] = None,
                 download: bool = False,
                 data_prefix: str = '',
                 test_mode: bool = False,
                 check_md5: bool = True,
                 **kwargs):
        name = type(self).__name__
        if download:
            raise ConfigError(
                f'mmal.{name}: download=True is not supported: mmal never '
                'downloads datasets (cluster nodes have no network, and '
                'every rank would race to write the same files). Download '
                'and extract the dataset yourself, then set data_root to the '
                f'folder that holds {self.base_folder}/.')
        if not data_root and not data_prefix:
            raise ConfigError(
                f'mmal.{name}: set data_root to the folder that holds '
                f'{self.base_folder}/.')
        self.check_md5 = bool(check_md5)
        super().__init__(
            data_root=data_root,
            split=split,
            metainfo=metainfo,
            download=False,
            data_prefix=data_prefix,
            test_mode=test_mode,
            **kwargs)

    def _split_files(self) -> List[Tuple[str, Optional[str]]]:
        """``[(file name, md5)]`` of the split, in canonical order."""
        entries = self.train_list if self.split == 'train' else self.test_list
        return [(name, md5) for name, md5 in entries]

    def _read_pickle(self, filename: str, md5: Optional[str]) -> dict:
        """Read (and md5-check) one pickle file of the dataset folder.

        Raises:
            MissingFileError: If the folder or the file does not exist.
            DataError: If the md5 differs or the file is not a pickled dict.
        """
        folder = join_path(self.data_prefix['root'], self.base_folder)
        path = join_path(folder, filename)
        if not exists(path):
            missing = path if exists(folder) else folder
            raise MissingFileError(
                f'data not found: {missing} (mmal.{type(self).__name__} '
                f'split={self.split!r} reads {self.base_folder}/{filename}).'
                '\nDownload the dataset there, or point the config at it '
                'with `tools/al_train.py CONFIG --data-root /path/to/data/` '
                "(moves every path under the config's data_root).")
        raw = get(path)
        if self.check_md5 and md5 is not None:
            actual = hashlib.md5(raw).hexdigest()
            if actual != md5:
                raise DataError(
                    f'{path}: md5 is {actual}, expected {md5} (the official '
                    f'{self.base_folder} release). The file is corrupt or '
                    'from another release; download it again, or pass '
                    'check_md5=False to read it anyway.')
        try:
            entry = pickle.loads(raw, encoding='latin1')
        except Exception as e:  # any unpickling failure: bad file
            raise DataError(
                f'{path}: not a readable pickle file ({e}).') from e
        if not isinstance(entry, dict):
            raise DataError(f'{path}: expected a pickled dict, got '
                            f'{type(entry).__name__}.')
        return entry

    def _read_batch(self, filename: str, md5: Optional[str],
                    first_index: int) -> Tuple[np.ndarray, List[int]]:
        """Images ``(N, 32, 32, 3)`` uint8 (HWC) and labels of one batch
        file whose first sample has index ``first_index`` in the split."""
        entry = self._read_pickle(filename, md5)
        path = join_path(self.data_prefix['root'], self.base_folder, filename)
        for key in ('data', self.label_key):
            if key not in entry:
                raise DataError(f'{path}: no {key!r} entry (keys: '
                                f'{sorted(entry)}).')
        data = np.asarray(entry['data'])
        labels = [int(v) for v in entry[self.label_key]]
        if (data.dtype != np.uint8 or data.ndim != 2
                or data.shape[1] != _IMG_BYTES):
            raise DataError(
                f"{path}: 'data' must be uint8 of shape (N, {_IMG_BYTES}), "
                f'got {data.dtype} {data.shape}.')
        if len(labels) != data.shape[0]:
            raise DataError(
                f'{path}: {data.shape[0]} images but {len(labels)} labels '
                f'({self.label_key!r}).')
        num_classes = len(self.CLASSES)
        for i, label in enumerate(labels):
            if not 0 <= label < num_classes:
                raise DataError(
                    f'{path}: sample {self._img_id(first_index + i)!r} has '
                    f'label {label}, outside 0..{num_classes - 1}.')
        imgs = data.reshape((-1, ) + _IMG_SHAPE).transpose(0, 2, 3, 1)
        return imgs, labels

    def _img_id(self, index: int) -> str:
        return f'{self.split}/{index:05d}'

    def load_data_list(self) -> List[dict]:
        """Read the split's batch files.

        Returns:
            list[dict]: One dict per image in canonical order: ``img``
            (``(32, 32, 3)`` uint8, HWC, RGB), ``gt_label`` (int) and
            ``img_id`` (``'<split>/<index:05d>'``).
        """
        if self.CLASSES is None:
            self._load_meta()
        data_list = []
        for filename, md5 in self._split_files():
            imgs, labels = self._read_batch(filename, md5, len(data_list))
            for img, label in zip(imgs, labels):
                data_list.append(
                    dict(
                        img=img,
                        gt_label=label,
                        img_id=self._img_id(len(data_list))))
        return data_list

    def _load_meta(self) -> None:
        """Take the class names from the meta file (when the config and
        ``METAINFO`` give none)."""
        entry = self._read_pickle(self.meta['filename'], self.meta.get('md5'))
        key = self.meta['key']
        if key not in entry:
            path = join_path(self.data_prefix['root'], self.base_folder,
                             self.meta['filename'])
            raise DataError(f'{path}: no {key!r} entry (keys: '
                            f'{sorted(entry)}).')
        self._metainfo.setdefault('classes', tuple(entry[key]))


@DATASETS.register_module()
class CIFAR10(_LocalCIFARMixin, _MMPretrainCIFAR10):
    """CIFAR-10 from local batch files, with stable sample ids.

    Args:
        data_root (str): The folder that holds ``cifar-10-batches-py/``.
        split (str): ``'train'`` (50000 images from ``data_batch_1..5``) or
            ``'test'`` (10000 from ``test_batch``). Defaults to ``'train'``.
        metainfo (dict, optional): Meta information, e.g. ``classes``.
            Defaults to None (the CIFAR-10 class names).
        download (bool): Must be False: mmal never downloads (raises
            :class:`ConfigError` otherwise). Defaults to False.
        data_prefix (str): Folder under ``data_root`` (or alone) that holds
            ``cifar-10-batches-py/``. Defaults to ''.
        test_mode (bool): As in mmengine's ``BaseDataset``.
        check_md5 (bool): Check each file read against the md5 of the
            official release. Defaults to True.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``
            (``pipeline``, ``indices``, ``lazy_init`` ...).

    Every sample is a dict with ``img`` (``(32, 32, 3)`` uint8), ``gt_label``
    and ``img_id`` (``'train/00000'`` .. ``'train/49999'``,
    ``'test/00000'`` .. ``'test/09999'``).
    """

    label_key = 'labels'


@DATASETS.register_module()
class CIFAR100(_LocalCIFARMixin, _MMPretrainCIFAR100):
    """CIFAR-100 (fine labels) from local files, with stable sample ids.

    Args:
        data_root (str): The folder that holds ``cifar-100-python/``.
        split (str): ``'train'`` (50000 images from ``train``) or
            ``'test'`` (10000 from ``test``). Defaults to ``'train'``.
        metainfo (dict, optional): Meta information, e.g. ``classes``.
            Defaults to None (the 100 fine class names).
        download (bool): Must be False: mmal never downloads (raises
            :class:`ConfigError` otherwise). Defaults to False.
        data_prefix (str): Folder under ``data_root`` (or alone) that holds
            ``cifar-100-python/``. Defaults to ''.
        test_mode (bool): As in mmengine's ``BaseDataset``.
        check_md5 (bool): Check each file read against the md5 of the
            official release. Defaults to True.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``.

    Samples are as in :class:`CIFAR10`; ``gt_label`` is the fine label.
    """

    label_key = 'fine_labels'
