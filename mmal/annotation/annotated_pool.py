"""The pool of an annotation-mode run: one COCO file that mmal maintains.

In annotation mode the user brings a folder of images (or a COCO file
listing images without annotations) and a COCO file of the images already
labeled. mmal writes, into the work dir, one COCO file of the whole pool
(``annotations/pool.json``): every image, with the annotations of the
labeled ones and the config's categories. The pool's dataset reads it;
each import of new labels rewrites it (atomically), never the user's files.
"""
import logging
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from mmengine.logging import print_log

from mmal.utils.errors import DataError, MissingFileError
from mmal.utils.fileio import atomic_write_json, read_json

#: Image file extensions a folder pool takes.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def read_coco(path: str, what: str) -> Dict[str, Any]:
    """A COCO JSON file with at least an ``images`` list.

    Raises:
        MissingFileError: No such file.
        DataError: Not JSON, or not a COCO dict with ``images``.
    """
    if not osp.isfile(path):
        raise MissingFileError(f'{what}: {path} does not exist')
    try:
        coco = read_json(path)
    except ValueError as e:  # read_json names the file and what is wrong
        raise DataError(f'{what}: {e}') from e
    if not isinstance(coco, dict) or not isinstance(coco.get('images'), list):
        raise DataError(f'{what}: {path} is not a COCO file (a JSON object '
                        'with an "images" list)')
    return coco


def folder_images(image_dir: str) -> List[str]:
    """Image files under ``image_dir`` (recursively), as paths relative to
    it with ``/``, sorted."""
    if not osp.isdir(image_dir):
        raise MissingFileError(f'al_cfg.annotation.image_dir: {image_dir} is '
                               'not a folder')
    out = []
    for root, _, files in os.walk(image_dir):
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                rel = osp.relpath(osp.join(root, name), image_dir)
                out.append(rel.replace(os.sep, '/'))
    return sorted(out)


def image_size(path: str) -> Sequence[int]:
    """``(width, height)`` of an image file, from its header."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            return img.size
    except Exception as e:  # PIL raises many types
        raise DataError(f'cannot read the size of image {path}: {e}') from e


def build_pool(classes: Sequence[str],
               image_dir: str,
               labeled_ann_file: str,
               unlabeled_ann_file: Optional[str] = None,
               policy: str = 'error') -> Dict[str, Any]:
    """The pool's COCO dict from the user's files.

    The labeled file's images keep their ids and annotations (category
    ids mapped by name to the config's classes, numbered 1..K in config
    order). The unlabeled images are the images of ``unlabeled_ann_file``
    (their ids kept) or else every image file under ``image_dir`` that the
    labeled file does not list (ids after the largest labeled one, in file
    name order). File names are relative to ``image_dir``.

    An image of the folder whose size cannot be read (not an image, a
    truncated header) is an error naming it; under ``policy='drop'`` it is
    left out of the pool with a warning.

    Raises:
        DataError: An unknown category name, a file name or id listed
            twice, a labeled image with annotations of an unknown image,
            an unreadable image (policy ``'error'``).
    """
    labeled = read_coco(labeled_ann_file, 'al_cfg.annotation.labeled_ann_file')
    names = {c['id']: c['name'] for c in labeled.get('categories', [])}
    unknown = sorted(set(names.values()) - set(classes))
    if unknown:
        raise DataError(f'{labeled_ann_file}: categories {unknown} are not '
                        f'among the config\'s classes {list(classes)}')
    cat_id = {name: i + 1 for i, name in enumerate(classes)}
    images = [dict(im) for im in labeled['images']]
    known = {im['id'] for im in images}
    annotations = []
    for ann in labeled.get('annotations', []):
        if ann.get('image_id') not in known:
            raise DataError(f'{labeled_ann_file}: annotation {ann.get("id")} '
                            f'refers to image {ann.get("image_id")}, which '
                            'the file does not list')
        if ann.get('category_id') not in names:
            raise DataError(f'{labeled_ann_file}: annotation {ann.get("id")} '
                            'has unknown category id '
                            f'{ann.get("category_id")}')
        ann = dict(ann, category_id=cat_id[names[ann['category_id']]])
        annotations.append(ann)
    if unlabeled_ann_file:
        extra = read_coco(unlabeled_ann_file,
                          'al_cfg.annotation.unlabeled_ann_file')['images']
        extra = [dict(im) for im in extra]
    else:
        listed = {im['file_name'] for im in images}
        next_id = max(known, default=0) + 1
        extra, unreadable = [], []
        for name in folder_images(image_dir):
            if name in listed:
                continue
            try:
                width, height = image_size(osp.join(image_dir, name))
            except DataError as e:
                unreadable.append(str(e))
                continue
            extra.append(
                dict(id=next_id, file_name=name, width=width, height=height))
            next_id += 1
        if unreadable and policy != 'drop':
            raise DataError(
                f'{len(unreadable)} images of {image_dir} cannot be read: ' +
                '; '.join(unreadable[:10]) + '. Remove them, or set '
                'al_cfg.annotation_policy="drop" to leave them out')
        for msg in unreadable:
            print_log(
                f'left out of the pool: {msg}',
                'current',
                level=logging.WARNING)
    images += extra
    for key in ('id', 'file_name'):
        seen, dup = set(), []
        for im in images:
            if im[key] in seen:
                dup.append(im[key])
            seen.add(im[key])
        if dup:
            raise DataError(f'image {key}s listed twice in the labeled and '
                            f'unlabeled files: {dup[:10]}')
    for i, ann in enumerate(annotations):
        ann['id'] = i + 1
    return dict(
        images=images,
        annotations=annotations,
        categories=[dict(id=i, name=n) for n, i in cat_id.items()])


def labeled_image_ids(labeled_ann_file: str) -> List[str]:
    """Sample ids (``str(image id)``) of the user's labeled images."""
    coco = read_coco(labeled_ann_file, 'al_cfg.annotation.labeled_ann_file')
    return [str(im['id']) for im in coco['images']]


def write_pool(path: str, coco: Dict[str, Any]) -> None:
    """Write the pool's COCO file atomically."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    atomic_write_json(path, coco)
