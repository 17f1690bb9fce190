"""Annotation mode for classification: ``path class`` lists.

The pool is one text file that mmal maintains in the work dir
(``annotations/pool.txt``): a line ``relative/path.jpg <class index>`` per
image of the pool, ``-1`` for an unlabeled one, read by
:class:`mmal.datasets.CustomDataset` (sample id = the path relative to the
image folder). The user's labels come as a list of ``path class_name``
lines or as a folder per class; the export holds the predicted class as
the pre-label, in the same list format, so a reviewer can correct it and
import it as it is.
"""
import csv
import io
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from mmal.utils.errors import DataError, MissingFileError
from mmal.utils.fileio import atomic_write_json, atomic_write_text
from mmal.utils.text import counted
from .annotated_pool import folder_images
from .export_writers import image_list, image_url, label_studio_config

UNLABELED = -1
_LISTED = 10


def _read_lines(path: str, what: str) -> List[List[str]]:
    """``[path, label]`` (or ``[path]``) per non-empty line."""
    if not osp.isfile(path):
        raise MissingFileError(f'{what}: {path} does not exist')
    try:
        with open(path, encoding='utf-8') as f:
            lines = [ln.rstrip('\n') for ln in f]
    except UnicodeDecodeError as e:
        raise DataError(f'{what}: {path} is not a text file ({e})') from e
    return [ln.strip().rsplit(' ', 1) for ln in lines if ln.strip()]


def read_class_labels(path: str, classes: Sequence[str],
                      what: str) -> Dict[str, int]:
    """Relative path -> class index from a ``path class_name`` list or a
    folder per class (``path/<class_name>/<image>``). A list may give the
    class index instead of the name (mmpretrain's ``CustomDataset``
    lists); a class name takes precedence.

    Raises:
        DataError: A line without a class, an unknown class name, a path
            given twice.
    """
    index = {name: i for i, name in enumerate(classes)}
    out: Dict[str, int] = {}
    if osp.isdir(path):
        unknown = sorted(
            d for d in os.listdir(path)
            if osp.isdir(osp.join(path, d)) and d not in index)
        if unknown:
            raise DataError(f'{what}: {path} has folders {unknown} that are '
                            f'not among the classes {list(classes)}')
        for name in classes:
            sub = osp.join(path, name)
            if osp.isdir(sub):
                for rel in folder_images(sub):
                    out[f'{name}/{rel}'] = index[name]
        return out
    for i, parts in enumerate(_read_lines(path, what)):
        if len(parts) != 2:
            raise DataError(f'{what}: {path} line {i + 1} {parts[0]!r} has '
                            'no class (expected "path class_name")')
        rel, name = parts
        if name in index:
            label = index[name]
        elif name.isdigit() and int(name) < len(classes):
            label = int(name)  # mmpretrain's own lists: class indices
        else:
            raise DataError(f'{what}: {path} line {i + 1}: class {name!r} '
                            f'is not among the classes {list(classes)}')
        if rel in out:
            raise DataError(f'{what}: {path} lists {rel} twice')
        out[rel] = label
    return out


def build_class_pool(
        classes: Sequence[str],
        image_dir: str,
        labeled_ann_file: str,
        unlabeled_ann_file: Optional[str] = None) -> List[Dict[str, Any]]:
    """The pool: ``id`` (= ``file_name``, relative to ``image_dir``) and
    ``label`` (class index, :data:`UNLABELED` when not labeled) per image,
    labeled first.

    A labeled folder per class lies under ``image_dir`` (its paths are
    taken relative to it). The unlabeled images are those of
    ``unlabeled_ann_file`` (one path per line) or every image under
    ``image_dir`` that is not labeled.
    """
    what = 'al_cfg.annotation.labeled_ann_file'
    labels = read_class_labels(labeled_ann_file, classes, what)
    if osp.isdir(labeled_ann_file):
        prefix = osp.relpath(labeled_ann_file, image_dir).replace(os.sep, '/')
        if prefix.startswith('..'):
            raise DataError(f'{what}: the folder {labeled_ann_file} must lie '
                            f'under al_cfg.annotation.image_dir {image_dir}')
        labels = {
            f'{prefix}/{k}' if prefix != '.' else k: v
            for k, v in labels.items()
        }
    if unlabeled_ann_file:
        rest = [
            p[0] for p in _read_lines(unlabeled_ann_file,
                                      'al_cfg.annotation.unlabeled_ann_file')
        ]
    else:
        rest = [p for p in folder_images(image_dir) if p not in labels]
    twice = sorted(set(rest) & set(labels))
    if twice:
        raise DataError(f'images both labeled and unlabeled: {twice[:10]}')
    pool = [dict(id=k, file_name=k, label=v) for k, v in labels.items()]
    return pool + [dict(id=k, file_name=k, label=UNLABELED) for k in rest]


def write_class_pool(path: str, pool: List[Dict[str, Any]]) -> None:
    """``pool.txt`` (atomically): ``path label`` per image."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    atomic_write_text(
        path, ''.join(f'{im["file_name"]} {im["label"]}\n' for im in pool))


def read_class_pool(path: str) -> List[Dict[str, Any]]:
    return [
        dict(id=p, file_name=p, label=int(lab))
        for p, lab in _read_lines(path, 'the pool file')
    ]


def class_pool_dataset(ds_cfg: dict, pool_file: str, image_dir: str,
                       classes: List[str]) -> dict:
    """The pool's dataset config: ``ds_cfg``'s pipeline on ``pool.txt``."""
    return dict(
        type='mmal.CustomDataset',
        data_root='',
        data_prefix=image_dir.rstrip(osp.sep) + osp.sep,
        ann_file=pool_file,
        with_label=True,
        metainfo=dict(classes=tuple(classes)),
        pipeline=list(ds_cfg['pipeline']))


def write_class_export(out_dir: str, images: Sequence[Dict[str, Any]],
                       predictions: Dict[str, Dict[str, Any]],
                       scores: Dict[str, Optional[float]],
                       classes: Sequence[str], image_dir: str, image_root: str,
                       manifest: Dict[str, Any]) -> Dict[str, str]:
    """The export of a classification selection: ``labels_predicted.txt``
    (``path predicted_class``, the import format), ``images.txt`` (plain
    paths under ``image_dir``), ``scores.csv`` (with the predicted class
    and its probability), ``label_studio_tasks.json`` (``choices``
    predictions; paths under ``image_root``), ``label_config.xml`` (the
    labeling config they fit) and ``manifest.json`` (last)."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        k: osp.join(out_dir, f)
        for k, f in (('labels', 'labels_predicted.txt'),
                     ('list', 'images.txt'), ('scores', 'scores.csv'),
                     ('label_studio', 'label_studio_tasks.json'),
                     ('label_config', 'label_config.xml'), ('manifest',
                                                            'manifest.json'))
    }
    atomic_write_text(
        paths['labels'], ''.join(
            f'{im["file_name"]} {classes[predictions[im["id"]]["label"]]}\n'
            for im in images))
    atomic_write_text(paths['list'], image_list(images, image_dir))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([
        'rank', 'file_name', 'sample_id', 'score', 'predicted_class',
        'probability'
    ])
    for rank, im in enumerate(images):
        pred, score = predictions[im['id']], scores.get(im['id'])
        writer.writerow([
            rank + 1, im['file_name'], im['id'],
            '' if score is None else repr(float(score)),
            classes[pred['label']],
            repr(pred['score'])
        ])
    atomic_write_text(paths['scores'], buf.getvalue())
    tasks = [
        dict(
            data=dict(image=image_url(image_root, im['file_name'])),
            predictions=[
                dict(
                    model_version=f'mmal cycle {manifest.get("cycle")}',
                    score=predictions[im['id']]['score'],
                    result=[
                        dict(
                            type='choices',
                            from_name='label',
                            to_name='image',
                            value=dict(choices=[
                                classes[predictions[im['id']]['label']]
                            ]))
                    ])
            ]) for im in images
    ]
    atomic_write_json(paths['label_studio'], tasks)
    atomic_write_text(paths['label_config'],
                      label_studio_config(classes, 'Choices'))
    atomic_write_json(paths['manifest'], dict(manifest, files=paths))
    return paths


def read_class_import(path: str, selection: Dict[str, Dict[str, Any]],
                      classes: Sequence[str], cycle: int) -> Dict[str, int]:
    """Sample id -> class index of every selected image, from a ``path
    class_name`` list or a folder per class, after every check (paths
    matched to the selection by relative path, else by base name when
    unique).

    Raises:
        DataError: An image not in the selection, a selected image
            missing, an unknown class, a malformed line.
    """
    where = f'{path} (answering cycle {cycle}\'s selection)'
    if not osp.exists(path):
        raise MissingFileError(f'--annotations: {path} does not exist')
    given = read_class_labels(path, classes, '--annotations')
    by_base: Dict[str, List[str]] = {}
    for name in selection:
        by_base.setdefault(osp.basename(name), []).append(name)
    out: Dict[str, int] = {}
    foreign = []
    for rel, label in given.items():
        name = rel if rel in selection else (by_base[osp.basename(
            rel)][0] if len(by_base.get(osp.basename(rel), [])) == 1 else '')
        if not name:
            foreign.append(rel)
        else:
            out[selection[name]['id']] = label
    if foreign:
        raise DataError(f'{where}: {counted(len(foreign), "image")} '
                        f'{"is" if len(foreign) == 1 else "are"} not in the '
                        f'selection: {foreign[:_LISTED]}')
    missing = sorted(
        set(selection) - {n
                          for n in selection if selection[n]['id'] in out})
    if missing:
        raise DataError(f'{where}: {len(missing)} selected images have no '
                        f'label: {missing[:_LISTED]}')
    return out
