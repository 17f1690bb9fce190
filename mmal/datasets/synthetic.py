"""A deterministic synthetic detection dataset that needs no download.

Coloured shapes (``'square'``, ``'circle'``, ``'triangle'``) on textured
backgrounds, written as JPEG images with COCO or Pascal VOC annotations, so
tests and quick experiments can run a real mmdet pipeline end to end::

    python -m mmal.datasets.synthetic data/shapes --fmt coco

COCO layout (``fmt='coco'``)::

    out_dir/images/{train,val}/*.jpg
    out_dir/annotations/{train,val}.json
    out_dir/manifest.json

Pascal VOC layout (``fmt='voc'``), readable by mmdet's ``XMLDataset`` with
``metainfo=dict(classes=SHAPES_CLASSES)``, ``data_root=out_dir``,
``ann_file='VOC/ImageSets/Main/train.txt'``,
``data_prefix=dict(sub_data_root='VOC/')``::

    out_dir/VOC/JPEGImages/*.jpg
    out_dir/VOC/Annotations/*.xml
    out_dir/VOC/ImageSets/Main/{train,val}.txt
    out_dir/manifest.json

The same arguments always give the same images and annotations; a second
call with the same arguments finds ``manifest.json`` and returns at once.
"""
import argparse
import colorsys
import json
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Dict, List, Tuple

import cv2
import numpy as np

__all__ = ['SHAPES_CLASSES', 'generate_shapes_dataset']

#: The classes of the synthetic dataset, in label order (COCO category ids
#: 1, 2, 3).
SHAPES_CLASSES = ('square', 'circle', 'triangle')

_MANIFEST = 'manifest.json'
_GENERATOR_VERSION = 1
# Hue (degrees) of each class's colour family: red, green, blue.
_CLASS_HUES = (0.0, 120.0, 230.0)
# Probability that an object takes another class's colour family.
_OFF_COLOUR_PROB = 0.1
_MAX_IOU = 0.05


def _colour(rng: np.random.Generator, label: int) -> Tuple[int, int, int]:
    """A BGR colour from the family of ``label`` (sometimes another's)."""
    family = label
    if rng.random() < _OFF_COLOUR_PROB:
        family = int(rng.integers(len(_CLASS_HUES)))
    hue = (_CLASS_HUES[family] + rng.uniform(-15, 15)) % 360.0
    r, g, b = colorsys.hsv_to_rgb(hue / 360.0, rng.uniform(0.6, 1.0),
                                  rng.uniform(0.55, 1.0))
    return int(b * 255), int(g * 255), int(r * 255)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured, low-saturation background, ``(size, size, 3)`` uint8."""
    if rng.random() < 0.5:
        # smooth random noise: a coarse random grid upsampled
        cells = int(rng.integers(3, 9))
        coarse = rng.uniform(60, 200, size=(cells, cells, 1))
        coarse = coarse + rng.uniform(-25, 25, size=(cells, cells, 3))
        img = cv2.resize(
            coarse.astype(np.float32), (size, size),
            interpolation=cv2.INTER_CUBIC)
    else:
        # stripes at a random angle and period, between two grey-ish tones
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.08, 0.3) * size
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period
        t = 0.5 + 0.5 * np.sin(phase)[..., None]
        c0 = rng.uniform(50, 200, size=3)
        c1 = rng.uniform(50, 200, size=3)
        img = c0 * (1 - t) + c1 * t
    img = img + rng.normal(0, 6, size=(size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, label: int, x0: int, y0: int,
                side: int, size: int) -> np.ndarray:
    """Draw one shape in the ``side``-px square at ``(x0, y0)``; returns a
    ``(size, size)`` uint8 mask."""
    mask = np.zeros((size, size), np.uint8)
    if label == 0:  # square
        cv2.rectangle(
            mask, (x0, y0), (x0 + side - 1, y0 + side - 1), 255, thickness=-1)
    elif label == 1:  # circle
        r = (side - 1) // 2
        cv2.circle(mask, (x0 + r, y0 + r), r, 255, thickness=-1)
    else:  # triangle: apex somewhere on the top edge, base at the bottom
        apex = x0 + int(rng.integers(0, side))
        pts = np.array(
            [[apex, y0], [x0, y0 + side - 1], [x0 + side - 1, y0 + side - 1]],
            np.int32)
        cv2.fillPoly(mask, [pts], 255)
    return mask


def _iou(a: List[float], b: List[float]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def _make_image(
        rng: np.random.Generator, size: int,
        max_objects: int) -> Tuple[np.ndarray, List[Tuple[int, List[int]]]]:
    """One image and its objects ``[(label, [x1, y1, x2, y2]), ...]`` with
    ``x2, y2`` exclusive pixel bounds."""
    img = _background(rng, size)
    lo = max(4, round(12 * size / 128))
    hi = max(lo + 1, round(48 * size / 128))
    wanted = int(rng.integers(1, max_objects + 1))
    objects: List[Tuple[int, List[int]]] = []
    for _ in range(wanted):
        for _attempt in range(30):
            side = int(rng.integers(lo, hi + 1))
            x0 = int(rng.integers(0, size - side + 1))
            y0 = int(rng.integers(0, size - side + 1))
            box = [x0, y0, x0 + side, y0 + side]
            if all(_iou(box, b) <= _MAX_IOU for _, b in objects):
                break
        else:
            continue  # no room left: fewer objects (at least one is placed)
        label = int(rng.integers(len(SHAPES_CLASSES)))
        mask = _shape_mask(rng, label, x0, y0, side, size)
        ys, xs = np.nonzero(mask)
        bbox = [
            int(xs.min()),
            int(ys.min()),
            int(xs.max()) + 1,
            int(ys.max()) + 1
        ]
        img[mask > 0] = _colour(rng, label)
        objects.append((label, bbox))
    return img, objects


def _write_jpeg(path: str, img: np.ndarray) -> None:
    if not cv2.imwrite(path, img, [int(cv2.IMWRITE_JPEG_QUALITY), 95]):
        raise OSError(f'Could not write {path}')


def _voc_xml(stem: str, size: int,
             objects: List[Tuple[int, List[int]]]) -> ET.ElementTree:
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'JPEGImages'
    ET.SubElement(root, 'filename').text = f'{stem}.jpg'
    size_node = ET.SubElement(root, 'size')
    ET.SubElement(size_node, 'width').text = str(size)
    ET.SubElement(size_node, 'height').text = str(size)
    ET.SubElement(size_node, 'depth').text = '3'
    ET.SubElement(root, 'segmented').text = '0'
    for label, (x1, y1, x2, y2) in objects:
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = SHAPES_CLASSES[label]
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = '0'
        ET.SubElement(obj, 'difficult').text = '0'
        box = ET.SubElement(obj, 'bndbox')
        # VOC: 1-based, inclusive pixel coordinates
        for tag, v in (('xmin', x1 + 1), ('ymin', y1 + 1), ('xmax', x2),
                       ('ymax', y2)):
            ET.SubElement(box, tag).text = str(v)
    ET.indent(root)
    return ET.ElementTree(root)


def _read_manifest(out_dir: str) -> dict:
    try:
        with open(osp.join(out_dir, _MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _layout(out_dir: str, fmt: str) -> Dict[str, dict]:
    """Dataset kwargs for mmdet (``data_root``, ``ann_file``,
    ``data_prefix``) per split."""
    out = {}
    for split in ('train', 'val'):
        if fmt == 'coco':
            out[split] = dict(
                data_root=out_dir,
                ann_file=f'annotations/{split}.json',
                data_prefix=dict(img=f'images/{split}/'))
        else:
            out[split] = dict(
                data_root=out_dir,
                ann_file=f'VOC/ImageSets/Main/{split}.txt',
                data_prefix=dict(sub_data_root='VOC/'))
    return out


def generate_shapes_dataset(out_dir: str,
                            num_train: int = 120,
                            num_val: int = 40,
                            img_size: int = 128,
                            max_objects: int = 4,
                            seed: int = 0,
                            fmt: str = 'coco') -> dict:
    """Write a small synthetic detection dataset (deterministic).

    Each image (``img_size x img_size``, JPEG) holds 1..``max_objects``
    shapes of sides about ``12..48 * img_size / 128`` px with little overlap
    (IoU <= 0.05); each class is mostly drawn in its own colour family
    (square: red, circle: green, triangle: blue).

    Args:
        out_dir (str): Output folder (created).
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        img_size (int): Image side in pixels.
        max_objects (int): Most objects per image (at least 1 per image).
        seed (int): Seed; the train and val splits use independent streams.
        fmt (str): ``'coco'`` or ``'voc'``.

    Returns:
        dict: ``classes`` (tuple), ``fmt``, ``out_dir``, ``num_images`` and
        ``num_boxes`` (dicts per split), ``train`` / ``val`` (kwargs for an
        mmdet dataset: ``data_root``, ``ann_file``, ``data_prefix``) and
        ``skipped`` (True if a matching manifest was found and nothing was
        written).

    Sample ids: COCO image ids are ints, train ``1..num_train`` and val
    ``num_train + 1 ..`` (unique across splits); VOC ids are file stems
    ``train_000001``, ``val_000001``.
    """
    if fmt not in ('coco', 'voc'):
        raise ValueError(f"fmt must be 'coco' or 'voc', got {fmt!r}")
    if max_objects < 1 or img_size < 16:
        raise ValueError('Need max_objects >= 1 and img_size >= 16.')
    args = dict(
        num_train=int(num_train),
        num_val=int(num_val),
        img_size=int(img_size),
        max_objects=int(max_objects),
        seed=int(seed),
        fmt=fmt,
        version=_GENERATOR_VERSION)
    out_dir = osp.abspath(out_dir)
    manifest = _read_manifest(out_dir)
    if manifest.get('args') == args:
        return dict(
            classes=SHAPES_CLASSES,
            fmt=fmt,
            out_dir=out_dir,
            num_images=manifest['num_images'],
            num_boxes=manifest['num_boxes'],
            skipped=True,
            **_layout(out_dir, fmt))

    if fmt == 'coco':
        os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    else:
        voc = osp.join(out_dir, 'VOC')
        for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
            os.makedirs(osp.join(voc, sub), exist_ok=True)

    num_images, num_boxes = {}, {}
    next_img_id, next_ann_id = 1, 1
    splits = (('train', num_train), ('val', num_val))
    for split_idx, (split, n) in enumerate(splits):
        rng = np.random.default_rng([seed, split_idx])
        images, annotations, stems = [], [], []
        boxes = 0
        if fmt == 'coco':
            os.makedirs(osp.join(out_dir, 'images', split), exist_ok=True)
        for k in range(n):
            img, objects = _make_image(rng, img_size, max_objects)
            stem = f'{split}_{k + 1:06d}'
            boxes += len(objects)
            if fmt == 'coco':
                _write_jpeg(
                    osp.join(out_dir, 'images', split, f'{stem}.jpg'), img)
                images.append(
                    dict(
                        id=next_img_id,
                        file_name=f'{stem}.jpg',
                        width=img_size,
                        height=img_size))
                for label, (x1, y1, x2, y2) in objects:
                    w, h = x2 - x1, y2 - y1
                    annotations.append(
                        dict(
                            id=next_ann_id,
                            image_id=next_img_id,
                            category_id=label + 1,
                            bbox=[x1, y1, w, h],
                            area=w * h,
                            iscrowd=0))
                    next_ann_id += 1
                next_img_id += 1
            else:
                _write_jpeg(osp.join(voc, 'JPEGImages', f'{stem}.jpg'), img)
                _voc_xml(stem, img_size, objects).write(
                    osp.join(voc, 'Annotations', f'{stem}.xml'))
                stems.append(stem)
        if fmt == 'coco':
            coco = dict(
                info=dict(description=f'mmal synthetic shapes ({split})'),
                images=images,
                annotations=annotations,
                categories=[
                    dict(id=i + 1, name=name, supercategory='shape')
                    for i, name in enumerate(SHAPES_CLASSES)
                ])
            with open(osp.join(out_dir, 'annotations', f'{split}.json'),
                      'w') as f:
                json.dump(coco, f)
        else:
            with open(osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'),
                      'w') as f:
                f.write(''.join(f'{s}\n' for s in stems))
        num_images[split] = n
        num_boxes[split] = boxes

    # written last: an interrupted run is redone by the next call
    tmp = osp.join(out_dir, _MANIFEST + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(
            dict(
                generator='mmal.datasets.synthetic',
                args=args,
                classes=list(SHAPES_CLASSES),
                num_images=num_images,
                num_boxes=num_boxes),
            f,
            indent=2)
    os.replace(tmp, osp.join(out_dir, _MANIFEST))
    return dict(
        classes=SHAPES_CLASSES,
        fmt=fmt,
        out_dir=out_dir,
        num_images=num_images,
        num_boxes=num_boxes,
        skipped=False,
        **_layout(out_dir, fmt))


def main(argv=None) -> dict:
    """Command line entry: ``python -m mmal.datasets.synthetic OUT_DIR``."""
    parser = argparse.ArgumentParser(
        description='Write the synthetic shapes detection dataset.')
    parser.add_argument('out_dir')
    parser.add_argument('--fmt', choices=('coco', 'voc'), default='coco')
    parser.add_argument('--num-train', type=int, default=120)
    parser.add_argument('--num-val', type=int, default=40)
    parser.add_argument('--img-size', type=int, default=128)
    parser.add_argument('--max-objects', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    a = parser.parse_args(argv)
    info = generate_shapes_dataset(
        a.out_dir,
        num_train=a.num_train,
        num_val=a.num_val,
        img_size=a.img_size,
        max_objects=a.max_objects,
        seed=a.seed,
        fmt=a.fmt)
    print(json.dumps(info, indent=2))
    return info


if __name__ == '__main__':
    main()
