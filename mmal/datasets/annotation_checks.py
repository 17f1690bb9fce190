"""Sanity checks of detection annotations, with a policy for what is wrong.

mmdet loads bad boxes without complaint (zero-area boxes, boxes outside the
image) and silently skips Pascal VOC objects whose class is not in the
dataset's classes. Training on a zero-area box gives NaN regression targets
far from the cause; :func:`check_annotations` finds these problems when the
dataset is built and either stops with a message that names the annotation
file, the sample and the box (policy ``'error'``) or removes the offending
instances and warns (policy ``'drop'``).
"""
import logging
import math
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Sequence, Union

from mmengine.fileio import exists, get
from mmengine.logging import MMLogger, print_log

from mmal.utils.errors import ConfigError, DataError
from .sample_id import sample_id

__all__ = ['check_annotations', 'check_instance', 'ANNOTATION_POLICIES']

#: The policies accepted by :func:`check_annotations`.
ANNOTATION_POLICIES = ('error', 'drop')

# Boxes may stick out of the image by this many pixels (rounding, the -1 of
# the VOC convention) before they are reported.
_TOLERANCE = 1.0
_MAX_LISTED = 20
_MAX_LOGGED = 100


class _Problem:
    """One problem: where it is and whether it can be dropped."""

    __slots__ = ('kind', 'position', 'instance', 'message')

    def __init__(self, kind: str, position: int, instance: Optional[int],
                 message: str) -> None:
        # kind: 'instance' (drop the instance), 'image' (always an error),
        # 'skipped' (mmdet already skipped the object: a warning under drop).
        self.kind = kind
        self.position = position
        self.instance = instance
        self.message = message


def _fmt_box(bbox: Sequence[float]) -> str:
    return '[' + ', '.join(f'{float(v):g}' for v in bbox) + ']'


def check_instance(inst: Dict[str, Any], width: Optional[float],
                   height: Optional[float],
                   num_classes: Optional[int]) -> List[str]:
    """What is wrong with one instance (``bbox`` x1 y1 x2 y2, ``bbox_label``;
    empty if nothing); ``width``, ``height`` and ``num_classes`` may be
    None (not checked)."""
    what = []
    bbox = inst.get('bbox')
    if bbox is not None:
        try:
            x1, y1, x2, y2 = (float(v) for v in bbox)
        except (TypeError, ValueError):
            return [f'malformed box {bbox!r} (expected [x1, y1, x2, y2])']
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            what.append('non-finite coordinates')
        else:
            if x2 <= x1 or y2 <= y1:
                what.append(f'zero or negative area (w={x2 - x1:g}, '
                            f'h={y2 - y1:g})')
            if width is not None and height is not None and (
                    x1 < -_TOLERANCE or y1 < -_TOLERANCE
                    or x2 > width + _TOLERANCE or y2 > height + _TOLERANCE):
                what.append(f'outside the image ({width:g}x{height:g}, '
                            f'tolerance {_TOLERANCE:g} px)')
    label = inst.get('bbox_label')
    if num_classes is not None and label is not None:
        if not isinstance(label, int) or not 0 <= label < num_classes:
            what.append(f'label {label!r} not in range({num_classes})')
    return what


def _xml_unknown_objects(xml_path: str, classes: Sequence[str],
                         backend_args: Optional[dict]) -> List[str]:
    """Return a description of each object of a VOC XML file whose class is
    not in ``classes``."""
    root = ET.fromstring(get(xml_path, backend_args=backend_args))
    found = []
    for k, obj in enumerate(root.findall('object')):
        name_node = obj.find('name')
        name = None if name_node is None else name_node.text
        if name not in classes:
            box = obj.find('bndbox')
            coords = ''
            if box is not None:
                coords = ' at [' + ', '.join(
                    str(getattr(box.find(t), 'text', '?'))
                    for t in ('xmin', 'ymin', 'xmax', 'ymax')) + ']'
            found.append(f'object #{k} {name!r}{coords}')
    return found


def _find_problems(dataset: Any) -> List[_Problem]:
    metainfo = dataset.metainfo
    classes = metainfo.get('classes')
    num_classes = None if classes is None else len(classes)
    default_ann = getattr(dataset, 'ann_file', None) or '<annotation file>'
    backend_args = getattr(dataset, 'backend_args', None)
    problems: List[_Problem] = []
    for pos in range(len(dataset)):
        info = dataset.get_data_info(pos)
        sid = sample_id(info)
        ann = info.get('xml_path') or default_ann
        where = f'{ann}: sample {sid!r}'
        img_path = info.get('img_path')
        if img_path is not None and not exists(
                img_path, backend_args=backend_args):
            problems.append(
                _Problem('image', pos, None,
                         f'{where}: image file {img_path!r} does not exist'))
        width, height = info.get('width'), info.get('height')
        for k, inst in enumerate(info.get('instances') or []):
            what = check_instance(inst, width, height, num_classes)
            if what:
                box = inst.get('bbox')
                # mmdet subtracts 1 from VOC's 1-based XML coordinates
                frame = ' (0-based; +1 in the XML)' if info.get(
                    'xml_path') else ''
                problems.append(
                    _Problem(
                        'instance', pos, k, f'{where}: instance #{k} box '
                        f'{_fmt_box(box) if box is not None else None}'
                        f'{frame} '
                        f'(label {inst.get("bbox_label")!r}): ' +
                        '; '.join(what)))
        # classification datasets: an integer gt_label out of range (-1:
        # not labeled yet, annotation mode's pool file)
        label = info.get('gt_label')
        if (num_classes is not None and isinstance(label, int) and label != -1
                and not 0 <= label < num_classes):
            problems.append(
                _Problem(
                    'image', pos, None, f'{where}: gt_label {label} not in '
                    f'range({num_classes})'))
        if info.get('xml_path') and classes is not None:
            for obj in _xml_unknown_objects(info['xml_path'], classes,
                                            backend_args):
                problems.append(
                    _Problem(
                        'skipped', pos, None,
                        f'{where}: {obj}: class not in the dataset classes '
                        f'{tuple(classes)} (mmdet skips such objects)'))
    return problems


def _drop_instances(dataset: Any, drops: Dict[int, set]) -> None:
    """Remove instances ``drops[position]`` from the dataset, in place."""
    if not hasattr(dataset, 'data_list'):
        raise TypeError(
            f'annotation_policy="drop" needs a dataset with a data_list '
            f'(an mmengine BaseDataset), got {type(dataset).__name__}.')
    if getattr(dataset, 'serialize_data', False):
        # The data list lives pickled in data_bytes: unpack, edit, repack.
        infos = []
        for pos in range(len(dataset)):
            info = dataset.get_data_info(pos)
            info.pop('sample_idx', None)
            infos.append(info)
        data_list = infos
    else:
        data_list = dataset.data_list
    for pos, bad in drops.items():
        insts = data_list[pos]['instances']
        data_list[pos]['instances'] = [
            inst for k, inst in enumerate(insts) if k not in bad
        ]
    if getattr(dataset, 'serialize_data', False):
        dataset.data_list = data_list
        dataset.data_bytes, dataset.data_address = dataset._serialize_data()


def _summary(problems: List[str], header: str) -> str:
    listed = '\n'.join(f'  - {p}' for p in problems[:_MAX_LISTED])
    more = len(problems) - _MAX_LISTED
    tail = f'\n  ... and {more} more' if more > 0 else ''
    return f'{header}\n{listed}{tail}'


def check_annotations(
        dataset: Any,
        policy: str = 'error',
        logger: Optional[Union[MMLogger, str]] = None) -> List[str]:
    """Check the annotations of a fully initialised detection dataset.

    For every sample (``dataset.get_data_info(i)``) it reports:

    * a missing image file (always an error, whatever the policy);
    * boxes ``[x1, y1, x2, y2]`` with zero or negative area;
    * boxes outside the image by more than 1 pixel (``x1 < -1``,
      ``y1 < -1``, ``x2 > width + 1`` or ``y2 > height + 1``);
    * labels outside ``range(len(dataset.metainfo['classes']))``;
    * for Pascal VOC samples (with an ``xml_path``): objects whose class is
      not in the dataset's classes (mmdet skips them silently).

    Args:
        dataset: An mmdet dataset after ``full_init()``. Under ``'drop'`` it
            must be an mmengine ``BaseDataset`` (it is edited in place; a
            serialized data list is unpacked and packed again).
        policy (str): ``'error'``: raise if anything is wrong. ``'drop'``:
            remove the offending instances, warn through the logger; an
            unknown class in an XML file is only a warning (mmdet already
            skipped the object); a missing image still raises.
        logger (MMLogger | str, optional): Where warnings go, as for
            :func:`mmengine.logging.print_log`. Defaults to the current
            mmengine logger.

    Returns:
        list[str]: One human-readable message per problem found (empty if
        the annotations are clean). Each names the annotation file, the
        sample id and the box.

    Raises:
        DataError: Under ``'error'`` if any problem was found, under
            ``'drop'`` if an image file is missing (a ``ValueError``). The
            message lists the first 20 problems and the count.
        ConfigError: For an unknown policy (a ``ValueError``).
    """
    if policy not in ANNOTATION_POLICIES:
        raise ConfigError(f'Unknown annotation policy {policy!r}; expected '
                          f'one of {ANNOTATION_POLICIES}.')
    logger = 'current' if logger is None else logger
    problems = _find_problems(dataset)
    messages = [p.message for p in problems]
    if not problems:
        return messages
    ann = getattr(dataset, 'ann_file', None) or type(dataset).__name__
    if policy == 'error':
        raise DataError(
            _summary(
                messages,
                f'{len(messages)} annotation problem(s) in {ann} (use '
                'annotation_policy="drop" to remove bad boxes):'))
    missing = [p.message for p in problems if p.kind == 'image']
    if missing:
        raise DataError(
            _summary(missing,
                     f'{len(missing)} sample(s) of {ann} cannot be used:'))
    drops: Dict[int, set] = {}
    for p in problems:
        if p.kind == 'instance':
            drops.setdefault(p.position, set()).add(p.instance)
    if drops:
        _drop_instances(dataset, drops)
    num_dropped = sum(len(v) for v in drops.values())
    shown = '\n'.join(f'  - {m}' for m in messages[:_MAX_LOGGED])
    more = len(messages) - _MAX_LOGGED
    print_log(
        f'{len(messages)} annotation problem(s) in {ann}; dropped '
        f'{num_dropped} instance(s) from {len(drops)} image(s):\n{shown}' +
        (f'\n  ... and {more} more' if more > 0 else ''),
        logger=logger,
        level=logging.WARNING)
    return messages
