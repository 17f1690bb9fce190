"""Labels from an annotation tool, checked against the export they answer.

An import is checked completely before anything is written: the file is a
COCO JSON (as CVAT's "COCO 1.0" and Label Studio's "COCO" exports are);
every image it lists belongs to the exported selection (matched by file
name, else by base name when that is unique); every selected image is in
it (an image without objects is listed with no annotation, as both tools
export it); categories are matched by name (tools renumber ids) and must
be the config's; boxes pass :func:`mmal.datasets.annotation_checks.
check_instance` under the run's annotation policy.
"""
import os.path as osp
import re
from typing import Any, Dict, List, Sequence, Tuple

from mmengine.logging import print_log

from mmal.datasets.annotation_checks import check_instance
from mmal.utils.errors import DataError
from mmal.utils.text import counted
from .annotated_pool import read_coco

_LISTED = 10

#: The prefix Label Studio gives the files uploaded to it
#: (``1a2b3c4d-image.jpg``).
_UPLOAD_PREFIX = re.compile(r'^[0-9a-f]{8}-')


def match_file_name(file_name: str, selected: Dict[str, Any],
                    by_base: Dict[str, List[str]]) -> str:
    """The selected file name that an annotation tool's ``file_name``
    names, or ''.

    Tried in turn: the name itself; its base name (tools rewrite the
    folders: ``images/x.jpg``, ``/data/upload/3/x.jpg``, Windows paths);
    that base name without Label Studio's upload prefix. A base name
    counts only when exactly one selected image has it.

    Args:
        file_name (str): The name in the tool's export.
        selected (dict): The selection's file names (keys).
        by_base (dict): Base name -> selected file names with it.
    """
    if file_name in selected:
        return file_name
    base = file_name.replace('\\', '/').split('/')[-1]
    for key in (base, _UPLOAD_PREFIX.sub('', base)):
        if len(by_base.get(key, [])) == 1:
            return by_base[key][0]
    return ''


def read_labels(path: str,
                selection: Dict[str, Dict[str, Any]],
                classes: Sequence[str],
                cycle: int,
                policy: str = 'error',
                logger: Any = 'current') -> Dict[str, List[Dict[str, Any]]]:
    """The labels of an import, by sample id, after every check.

    Args:
        path (str): The annotation tool's COCO JSON export.
        selection (dict): File name -> the exported image (``id``,
            ``file_name``, ``width``, ``height``), for the images of cycle
            ``cycle``'s selection.
        classes (Sequence[str]): The config's class names.
        cycle (int): The cycle whose selection the file answers.
        policy (str): ``'error'``: a bad box refuses the file; ``'drop'``:
            the box is dropped with a warning.

    Returns:
        dict: ``str(image id)`` -> annotations (``bbox`` x y w h,
        ``category_id`` 1..K in config order, ``iscrowd``), for every
        selected image.

    Raises:
        DataError: What is wrong, naming the file, the images and boxes.
    """
    coco = read_coco(path, 'annotations')
    where = f'{path} (answering cycle {cycle}\'s selection)'
    by_base: Dict[str, List[str]] = {}
    for name in selection:
        by_base.setdefault(osp.basename(name), []).append(name)
    ids: Dict[Any, str] = {}  # the file's image id -> selected file name
    foreign = []
    for im in coco['images']:
        name = match_file_name(
            str(im.get('file_name', '')), selection, by_base)
        if not name:
            foreign.append(im.get('file_name'))
        else:
            ids[im.get('id')] = name
    if foreign:
        raise DataError(f'{where}: {counted(len(foreign), "image")} '
                        f'{"is" if len(foreign) == 1 else "are"} not in the '
                        f'selection: {foreign[:_LISTED]}')
    missing = sorted(set(selection) - set(ids.values()))
    if missing:
        raise DataError(
            f'{where}: {counted(len(missing), "selected image")} '
            f'{"is" if len(missing) == 1 else "are"} missing: '
            f'{missing[:_LISTED]}. Export every image of the task, those '
            'without objects included (they are valid labels)')
    cats = {c.get('id'): c.get('name') for c in coco.get('categories', [])}
    cat_id = {name: i + 1 for i, name in enumerate(classes)}
    labels: Dict[str, List[Dict[str, Any]]] = {
        str(selection[n]['id']): []
        for n in selection
    }
    problems: List[Tuple[str, str]] = []
    for ann in coco.get('annotations', []):
        name = ids.get(ann.get('image_id'))
        if name is None:
            raise DataError(f'{where}: annotation {ann.get("id")} refers to '
                            f'image id {ann.get("image_id")}, which the file '
                            'does not list')
        cat = cats.get(ann.get('category_id'))
        if cat not in cat_id:
            raise DataError(
                f'{where}: annotation {ann.get("id")} of {name} has category '
                f'{cat!r} (id {ann.get("category_id")}); the config\'s '
                f'classes are {list(classes)}')
        image = selection[name]
        try:
            x, y, w, h = (float(v) for v in ann.get('bbox'))
            box = [x, y, x + w, y + h]
        except (TypeError, ValueError):
            box = ann.get('bbox')
        what = check_instance(
            dict(bbox=box), image['width'], image['height'], None)
        if what:
            problems.append((name, f'annotation {ann.get("id")} of {name}, '
                             f'bbox {ann.get("bbox")}: {"; ".join(what)}'))
            continue
        labels[str(image['id'])].append(
            dict(
                bbox=[x, y, w, h],
                category_id=cat_id[cat],
                area=w * h,
                iscrowd=int(ann.get('iscrowd', 0))))
    if problems and policy == 'error':
        raise DataError(
            f'{where}: '
            f'{counted(len(problems), "invalid box", "invalid boxes")} '
            '(al_cfg.annotation_policy=\'error\'): ' +
            '; '.join(p for _, p in problems[:_LISTED]))
    for _, p in problems:
        print_log(f'dropped {p}', logger, level=30)
    return labels


def merge_labels(pool: Dict[str, Any],
                 labels: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
    """The pool's COCO dict with ``labels`` as the annotations of their
    images (replacing any they had: importing twice gives the same file).
    Annotation ids are renumbered 1..N."""
    keep = [a for a in pool['annotations'] if str(a['image_id']) not in labels]
    ids = {str(im['id']): im['id'] for im in pool['images']}
    new = [
        dict(a, image_id=ids[sid]) for sid, anns in labels.items()
        for a in anns
    ]
    anns = [dict(a, id=i + 1) for i, a in enumerate(keep + new)]
    return dict(pool, annotations=anns)
