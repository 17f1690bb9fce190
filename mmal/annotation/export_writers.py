"""What to label next, in the formats annotation tools import.

A selection in annotation mode is written to ``cycle_k/to_annotate/``:

* ``annotations_coco.json``: COCO 1.0 (images with file names and sizes,
  the config's categories) with the model's predictions as
  pre-annotations (CVAT: import as "COCO 1.0");
* ``label_studio_tasks.json``: Label Studio tasks, one per image, with
  the predictions as ``predictions`` (rectangle labels in percent of the
  image; Label Studio takes pre-annotations this way, not from COCO); the
  image paths carry ``al_cfg.annotation.image_root`` (e.g. Label Studio's
  ``/data/local-files/?d=`` URL prefix);
* ``label_config.xml``: the Label Studio labeling config those tasks fit
  (the pool's categories);
* ``images.txt``: the image paths (plain, under ``image_dir``), one per
  line, in rank order (CVAT, people, scripts);
* ``scores.csv``: rank, file name, sample id and selector score;
* ``manifest.json``: the cycle, the selected ids and file names, and the
  command that imports the labels.
"""
import csv
import io
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence
from xml.sax.saxutils import quoteattr

import torch

from mmal.utils.fileio import atomic_write_json, atomic_write_text

#: File names of an export.
COCO_FILE = 'annotations_coco.json'
LABEL_STUDIO_FILE = 'label_studio_tasks.json'
LIST_FILE = 'images.txt'
SCORES_FILE = 'scores.csv'
MANIFEST_FILE = 'manifest.json'
LABEL_CONFIG_FILE = 'label_config.xml'


def agnostic_nms(bboxes: torch.Tensor, scores: torch.Tensor,
                 iou_thr: float) -> torch.Tensor:
    """Class-agnostic NMS: indices of the boxes kept, highest score first.

    A detector's own NMS runs per class, so one object can come out under
    two or three classes with the same box; an annotator wants one box per
    object.

    Args:
        bboxes (Tensor): (n, 4) x1 y1 x2 y2.
        scores (Tensor): (n, ).
        iou_thr (float): A box whose IoU with a kept, higher-scoring box
            exceeds this is dropped.

    Returns:
        Tensor: (k, ) int64 indices into ``bboxes``.
    """
    if bboxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    from mmcv.ops import nms
    _, keep = nms(bboxes.float(), scores.float(), iou_thr)
    return keep.long()


def image_url(image_root: str, file_name: str) -> str:
    """``file_name`` under ``image_root``: a path join, or appended as it
    is to a prefix that ends a URL query or path (``...?d=``, ``.../``),
    e.g. Label Studio's ``/data/local-files/?d=``."""
    if image_root.endswith(('=', '/')):
        return image_root + file_name
    return osp.join(image_root, file_name)


def image_list(images: Sequence[Dict[str, Any]], image_dir: str) -> str:
    """``images.txt``: each image's plain path under ``image_dir``, one a
    line, in the given (rank) order."""
    return ''.join(
        osp.join(image_dir, im['file_name']) + '\n' for im in images)


def label_studio_config(classes: Sequence[str], control: str) -> str:
    """A Label Studio labeling config for the exported tasks: the image
    ``image`` and one ``label`` control listing ``classes``.

    Args:
        classes (Sequence[str]): The pool's category names, in order.
        control (str): ``'RectangleLabels'`` (detection) or ``'Choices'``
            (classification).
    """
    tag = 'Label' if control == 'RectangleLabels' else 'Choice'
    items = ''.join(f'    <{tag} value={quoteattr(str(c))}/>\n'
                    for c in classes)
    extra = '' if tag == 'Label' else ' choice="single"'
    return ('<View>\n  <Image name="image" value="$image"/>\n'
            f'  <{control} name="label" toName="image"{extra}>\n'
            f'{items}  </{control}>\n</View>\n')


def coco_predictions(images: Sequence[Dict[str, Any]],
                     predictions: Dict[str, Dict[str, list]],
                     classes: Sequence[str]) -> Dict[str, Any]:
    """COCO 1.0 dict of ``images`` with ``predictions`` as annotations.

    Args:
        images (Sequence[dict]): COCO image entries (``id``,
            ``file_name``, ``width``, ``height``) in rank order.
        predictions (dict): ``str(image id)`` -> ``bboxes`` (n x 4, x1 y1
            x2 y2 in the image's pixels), ``scores`` (n), ``labels`` (n,
            indices into ``classes``).
        classes (Sequence[str]): Category names; ids are 1..K.

    Returns:
        dict: ``images``, ``annotations`` (``bbox`` x y w h, ``score``,
        an empty ``segmentation``), ``categories``.
    """
    anns = []
    for im in images:
        pred = predictions.get(str(im['id']), {})
        for box, score, label in zip(
                pred.get('bboxes', []), pred.get('scores', []),
                pred.get('labels', [])):
            x1, y1, x2, y2 = (float(v) for v in box)
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=im['id'],
                    category_id=int(label) + 1,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=(x2 - x1) * (y2 - y1),
                    # a box has no mask; CVAT's COCO importer (datumaro)
                    # warns for every annotation without the key
                    segmentation=[],
                    iscrowd=0,
                    score=float(score)))
    return dict(
        images=[{
            k: im[k]
            for k in ('id', 'file_name', 'width', 'height')
        } for im in images],
        annotations=anns,
        categories=[dict(id=i + 1, name=n) for i, n in enumerate(classes)])


def label_studio_tasks(coco: Dict[str, Any], image_root: str,
                       model_version: str) -> List[Dict[str, Any]]:
    """Label Studio tasks (one per image of ``coco``) whose
    ``predictions`` hold ``coco``'s boxes as ``rectanglelabels``.

    The labeling config they fit names the image ``image`` and the labels
    ``label``: ``<Image name="image" value="$image"/>
    <RectangleLabels name="label" toName="image">...``.
    """
    names = {c['id']: c['name'] for c in coco['categories']}
    by_image: Dict[Any, list] = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    tasks = []
    for im in coco['images']:
        w, h = im['width'], im['height']
        result = []
        for ann in by_image.get(im['id'], []):
            x, y, bw, bh = ann['bbox']
            result.append(
                dict(
                    id=f'{im["id"]}_{ann["id"]}',
                    type='rectanglelabels',
                    from_name='label',
                    to_name='image',
                    original_width=w,
                    original_height=h,
                    image_rotation=0,
                    score=ann['score'],
                    value=dict(
                        x=100 * x / w,
                        y=100 * y / h,
                        width=100 * bw / w,
                        height=100 * bh / h,
                        rotation=0,
                        rectanglelabels=[names[ann['category_id']]])))
        scores = [r['score'] for r in result]
        tasks.append(
            dict(
                data=dict(image=image_url(image_root, im['file_name'])),
                predictions=[
                    dict(
                        model_version=model_version,
                        score=max(scores) if scores else 0.0,
                        result=result)
                ]))
    return tasks


def write_export(out_dir: str, images: Sequence[Dict[str, Any]],
                 predictions: Dict[str,
                                   Dict[str,
                                        list]], scores: Dict[str,
                                                             Optional[float]],
                 classes: Sequence[str], image_dir: str, image_root: str,
                 manifest: Dict[str, Any]) -> Dict[str, str]:
    """Write every file of an export (see the module doc) into ``out_dir``.

    ``images.txt`` lists the images under ``image_dir`` (plain paths);
    Label Studio's tasks name them under ``image_root``.

    Each file is written atomically, the manifest last: an export is
    complete once ``manifest.json`` exists.

    Returns:
        dict: What -> path of each file written.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        k: osp.join(out_dir, f)
        for k, f in (('coco', COCO_FILE), ('label_studio', LABEL_STUDIO_FILE),
                     ('label_config', LABEL_CONFIG_FILE), ('list', LIST_FILE),
                     ('scores', SCORES_FILE), ('manifest', MANIFEST_FILE))
    }
    coco = coco_predictions(images, predictions, classes)
    atomic_write_json(paths['coco'], coco)
    atomic_write_json(
        paths['label_studio'],
        label_studio_tasks(coco, image_root,
                           f'mmal cycle {manifest.get("cycle")}'))
    atomic_write_text(paths['label_config'],
                      label_studio_config(classes, 'RectangleLabels'))
    atomic_write_text(paths['list'], image_list(images, image_dir))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(['rank', 'file_name', 'sample_id', 'score'])
    for rank, im in enumerate(images):
        score = scores.get(str(im['id']))
        writer.writerow([
            rank + 1, im['file_name'], im['id'],
            '' if score is None else repr(float(score))
        ])
    atomic_write_text(paths['scores'], buf.getvalue())
    atomic_write_json(paths['manifest'], dict(manifest, files=paths))
    return paths
