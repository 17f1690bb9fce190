"""Annotation mode: export what to label, import the labels, continue.

A scripted annotator answers each export from the hidden ground truth of
the generated shapes (as CVAT or Label Studio would export it: its own
image and category ids, the exported file names), and after 2 rounds the
labeled pool equals what the simulation labeled with the same seed and
selector (random: its ranking depends on the ids and the seed only).
Each bad import is refused with a message and changes no file of the work
dir but ``al.log``.
"""
import copy
import glob
import hashlib
import json
import os
import os.path as osp

import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmal.annotation.export_writers import agnostic_nms
from mmal.engine import ActiveLearningRunner
from mmal.structures import ALState
from mmal.utils import UserError
from mmal.utils.checkpoint import trusted_checkpoint_loading
from conftest import tiny_config

PRE_THR = 0.02  # a 2-epoch model scores low: export some boxes


def _read(path):
    with open(path) as f:
        return json.load(f)


def _write(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f)
    return path


def _simulate(cfg, work_dir, cycles=3):
    """What a simulation of the random selector labels in ``cycles``
    cycles: its ranking depends on the ids and the seed only (no model),
    so the driver's selections without the trainings give the same pools.

    Returns:
        tuple: The state (cycle ``k``'s record: ``select`` done) and the
        annotation cost of the labeled set of each cycle.
    """
    runner = ActiveLearningRunner(cfg, work_dir)
    state = runner.load_or_init_state()
    for cycle in range(cycles - 1):
        runner.select(state, cycle)
    labeled = state.pool.to_dict()['labeled']
    costs = [
        runner.cost([i for i, c in labeled.items() if c <= k])
        for k in range(cycles)
    ]
    return state, costs


@pytest.fixture(scope='module')
def simulation(tmp_path_factory):
    """The random selector's tiny demo, 3 cycles (2 selections)."""
    work_dir = str(tmp_path_factory.mktemp('sim'))
    cfg = tiny_config('random_fcos_shapes.py', **{'al_cfg.num_cycles': 3})
    return (work_dir, ) + _simulate(cfg, work_dir)


def _annotation_config(sim_dir, tmp):
    """The same demo in annotation mode: the simulation's cycle-0 images
    as the labeled file, the rest of the pool as a COCO list of images."""
    gt = _read(osp.join(sim_dir, 'data', 'annotations', 'train.json'))
    state = _read(osp.join(sim_dir, 'al_state.json'))
    first = {int(k) for k, c in state['pool']['labeled'].items() if c == 0}
    labeled = dict(
        gt,
        images=[im for im in gt['images'] if im['id'] in first],
        annotations=[a for a in gt['annotations'] if a['image_id'] in first])
    unlabeled = dict(
        images=[im for im in gt['images'] if im['id'] not in first])
    cfg = tiny_config(
        'random_fcos_shapes.py', **{
            'al_cfg.num_cycles': 3,
            'al_cfg.annotation': dict(
                image_dir=osp.join(sim_dir, 'data', 'images', 'train'),
                labeled_ann_file=_write(str(tmp / 'labeled.json'), labeled),
                unlabeled_ann_file=_write(
                    str(tmp / 'unlabeled.json'), unlabeled),
                pre_annotation_score_thr=PRE_THR),
        })
    return cfg, gt


def _answer(export_dir, gt, path, shift_ids=100):
    """What an annotation tool exports for the images of an export: the
    hidden ground truth, with the tool's own image and category ids."""
    exported = _read(osp.join(export_dir, 'annotations_coco.json'))
    names = [im['file_name'] for im in exported['images']]
    by_name = {im['file_name']: im for im in gt['images']}
    cats = {c['id']: c['name'] for c in gt['categories']}
    tool_cat = {name: 50 - i for i, name in enumerate(sorted(cats.values()))}
    images, anns = [], []
    for k, name in enumerate(names):
        im = by_name[name]
        images.append(
            dict(
                id=k + shift_ids,
                file_name=name,
                width=im['width'],
                height=im['height']))
        for a in gt['annotations']:
            if a['image_id'] == im['id']:
                anns.append(
                    dict(
                        id=len(anns) + 1,
                        image_id=k + shift_ids,
                        category_id=tool_cat[cats[a['category_id']]],
                        bbox=list(a['bbox']),
                        area=a['area'],
                        iscrowd=0))
    return _write(
        path,
        dict(
            images=images,
            annotations=anns,
            categories=[dict(id=i, name=n) for n, i in tool_cat.items()]))


def _snapshot(work_dir):
    out = {}
    for path in sorted(glob.glob(osp.join(work_dir, '**'), recursive=True)):
        if osp.isfile(path) and osp.basename(path) != 'al.log':
            with open(path, 'rb') as f:
                out[path] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope='module')
def round_trip(simulation, tmp_path_factory):
    sim_dir = simulation[0]
    tmp = tmp_path_factory.mktemp('ann')
    cfg, gt = _annotation_config(sim_dir, tmp)
    work_dir = str(tmp / 'run')
    steps = []
    state = ActiveLearningRunner(copy.deepcopy(cfg), work_dir).run()
    steps.append(copy.deepcopy(state.to_dict()))
    answers = []
    for cycle in (0, 1):
        export_dir = osp.join(work_dir, f'cycle_{cycle}', 'to_annotate')
        answers.append(_answer(export_dir, gt, str(tmp / f'ann{cycle}.json')))
        if cycle == 0:  # checked before the import below changes it
            bad_imports = _bad_imports(cfg, work_dir, tmp, answers[0], gt)
        else:  # cycle 0's answer, edited, while cycle 1's export waits
            edited = _read(answers[0])
            edited['annotations'] = edited['annotations'][1:]
            before = _snapshot(work_dir)
            with pytest.raises(UserError, match='not in the selection') as e:
                ActiveLearningRunner(
                    copy.deepcopy(cfg),
                    work_dir,
                    annotations=_write(str(tmp / 'old_cycle.json'),
                                       edited)).run()
            bad_imports['a file for another cycle'] = (str(
                e.value), before == _snapshot(work_dir), True)
        state = ActiveLearningRunner(
            copy.deepcopy(cfg), work_dir, annotations=answers[-1]).run()
        steps.append(copy.deepcopy(state.to_dict()))
    return dict(
        cfg=cfg,
        work_dir=work_dir,
        steps=steps,
        gt=gt,
        answers=answers,
        bad_imports=bad_imports,
        tmp=tmp)


def _bad_imports(cfg, work_dir, tmp, good, gt):
    """Each bad file against cycle 0's pending export: (message, whether
    the work dir's files stayed the same)."""
    answer = _read(good)
    unlabeled = [
        im for im in gt['images']
        if im['file_name'] not in {i['file_name']
                                   for i in answer['images']}
    ]
    extra = copy.deepcopy(answer)
    extra['images'].append(dict(unlabeled[0], id=999))
    dog = copy.deepcopy(answer)
    dog['categories'][0]['name'] = 'dog'
    flat = copy.deepcopy(answer)
    flat['annotations'][0]['bbox'][3] = 0.0
    missing = copy.deepcopy(answer)
    gone = missing['images'].pop()
    missing['annotations'] = [
        a for a in missing['annotations'] if a['image_id'] != gone['id']
    ]
    cases = {
        'not in the selection': _write(str(tmp / 'extra.json'), extra),
        'category .dog.': _write(str(tmp / 'dog.json'), dog),
        'not valid JSON': str(tmp / 'broken.json'),
        r'is empty \(no JSON': str(tmp / 'empty.json'),
        'invalid box': _write(str(tmp / 'flat.json'), flat),
        'selected image is missing': _write(
            str(tmp / 'missing.json'), missing),
    }
    with open(good) as f, open(cases['not valid JSON'], 'w') as g:
        g.write(f.read()[:-20])
    open(cases[r'is empty \(no JSON'], 'w').close()
    out = {}
    for match, path in cases.items():
        before = _snapshot(work_dir)
        log = osp.getsize(osp.join(work_dir, 'al.log'))
        with pytest.raises(UserError, match=match) as err:
            ActiveLearningRunner(
                copy.deepcopy(cfg), work_dir, annotations=path).run()
        out[match] = (str(err.value), before == _snapshot(work_dir),
                      osp.getsize(osp.join(work_dir, 'al.log')) >= log)
    return out


def test_round_trip_labels_what_the_simulation_labels(simulation, round_trip):
    _, sim_state, sim_costs = simulation
    steps = round_trip['steps']
    # each run stops at its export, the last one after cycle 2
    assert [[r['done'] for r in s['cycles']] for s in steps] == [
        [['train', 'evaluate']],
        [['train', 'evaluate', 'select'], ['train', 'evaluate']],
        [['train', 'evaluate', 'select'], ['train', 'evaluate', 'select'],
         ['train', 'evaluate']],
    ]
    assert steps[-1]['pool']['labeled'] == sim_state.pool.to_dict()['labeled']
    # the boxes of the imported images are the hidden ground truth's
    assert [r['cost'] for r in steps[-1]['cycles']] == sim_costs


def test_export_files_and_pre_annotations(round_trip):
    work_dir, gt = round_trip['work_dir'], round_trip['gt']
    export = osp.join(work_dir, 'cycle_0', 'to_annotate')
    manifest = _read(osp.join(export, 'manifest.json'))
    selection = _read(osp.join(work_dir, 'cycle_0', 'selection.json'))
    assert manifest['selected'] == selection['selected']
    assert '--annotations' in manifest['continue_with']
    names = {str(im['id']): im['file_name'] for im in gt['images']}
    assert manifest['file_names'] == [names[i] for i in manifest['selected']]
    with open(osp.join(export, 'images.txt')) as f:
        paths = f.read().split()
    assert [osp.basename(p) for p in paths] == manifest['file_names']
    assert all(osp.isfile(p) for p in paths)
    with open(osp.join(export, 'scores.csv')) as f:
        rows = f.read().split()[1:]
    assert [r.split(',')[1] for r in rows] == manifest['file_names']
    coco = _read(osp.join(export, 'annotations_coco.json'))
    tasks = _read(osp.join(export, 'label_studio_tasks.json'))
    assert [c['name']
            for c in coco['categories']] == ['square', 'circle', 'triangle']
    assert len(tasks) == len(coco['images']) == len(manifest['selected'])
    # the pre-annotations are the cycle-0 model's predictions (mmdet's
    # test_step at batch 1, in the image's pixels, score >= PRE_THR and the
    # model's own test score_thr). The export predicts in batches: float32
    # rounding may move a score across a threshold, so every box sure to
    # pass (1e-4 above both) must be exported, and every exported box must
    # be a prediction that may pass (1e-4 below)
    runner = ActiveLearningRunner(copy.deepcopy(round_trip['cfg']), work_dir)
    state = ALState.load(osp.join(work_dir, 'al_state.json'))
    with trusted_checkpoint_loading():
        model = runner.load_model(runner.checkpoint_path(state, 0))
    view = runner.pool_view.dataset
    view_ids = runner.pool_view.sample_ids
    test_cfg = model.bbox_head.test_cfg
    thr = max(PRE_THR, test_cfg.score_thr)
    assert coco['annotations'], 'no pre-annotation to compare'
    # COCO 1.0 as CVAT's importer reads it: every key of a detection file
    assert all(
        set(a) == {
            'id', 'image_id', 'category_id', 'bbox', 'area', 'segmentation',
            'iscrowd', 'score'
        } and a['segmentation'] == [] for a in coco['annotations'])
    exported = {}
    for a in coco['annotations']:
        exported.setdefault(a['image_id'], []).append(a)

    nms_iou = manifest['pre_annotation_nms_iou']
    assert nms_iou == 0.7  # the default: one box per object

    def predictions(item, score_thr, keep_thr):
        """test_step's boxes >= keep_thr, then class-agnostic NMS."""
        test_cfg.score_thr = score_thr
        with torch.no_grad():
            pred = model.test_step(item)[0].pred_instances
        keep = pred.scores >= keep_thr
        bboxes, scores = pred.bboxes[keep], pred.scores[keep]
        labels = pred.labels[keep]
        kept = agnostic_nms(bboxes, scores, nms_iou)
        return [(b.tolist(), float(s), int(lab))
                for b, s, lab in zip(bboxes[kept], scores[kept], labels[kept])]

    for task, im in zip(tasks, coco['images']):
        idx = view_ids.index(str(im['id']))
        item = pseudo_collate([_test_item(runner, view, idx)])
        sure = predictions(item, thr + 1e-4, thr + 1e-4)
        loose = predictions(item, thr - 1e-4, PRE_THR - 1e-4)
        ours = exported.get(im['id'], [])
        assert len(sure) <= len(ours) <= len(loose)
        for a in ours:  # each exported box is a prediction
            x, y, w, h = a['bbox']
            assert any(
                lab +
                1 == a['category_id'] and abs(s - a['score']) < 1e-4 and max(
                    abs(u - v) for u, v in zip(b, [x, y, x + w, y + h])) < 1e-2
                for b, s, lab in loose)
        # Label Studio: the same boxes, in percent of the image
        result = task['predictions'][0]['result']
        assert len(result) == len(ours)
        for r, a in zip(result, ours):
            assert r['value']['x'] == pytest.approx(100 * a['bbox'][0] /
                                                    im['width'])
            assert r['value']['rectanglelabels'] == [
                coco['categories'][a['category_id'] - 1]['name']
            ]


def _test_item(runner, view, idx):
    """Pool image ``idx`` through the config's test pipeline."""
    from mmengine.dataset import Compose

    from mmal.datasets.pool_data import eval_pipeline
    info = copy.deepcopy(view.get_data_info(idx))
    return Compose(eval_pipeline(runner.cfg))(info)


@pytest.mark.parametrize('match', [
    'not in the selection', 'category .dog.', 'not valid JSON',
    r'is empty \(no JSON', 'invalid box', 'selected image is missing',
    'a file for another cycle'
])
def test_bad_imports_are_refused_and_change_nothing(round_trip, match):
    message, unchanged, log_kept = round_trip['bad_imports'][match]
    assert unchanged, message
    assert log_kept
    assert 'cycle' in message or 'JSON' in message
    assert message.count('JSON') <= 1, message  # said once, if at all


def test_the_same_file_twice_labels_once_and_another_cycles_file_is_refused(
        round_trip):
    cfg, work_dir = round_trip['cfg'], round_trip['work_dir']
    before = _snapshot(work_dir)
    # the finished run: importing cycle 1's answer again is ignored
    state = ActiveLearningRunner(
        copy.deepcopy(cfg), work_dir,
        annotations=round_trip['answers'][1]).run()
    assert state.to_dict() == round_trip['steps'][-1]
    assert _snapshot(work_dir) == before
    with open(osp.join(work_dir, 'al.log')) as f:
        assert 'imported at cycle 1 already; ignoring it' in f.read()
    # an edited answer to cycle 0 when no export waits: refused
    edited = _read(round_trip['answers'][0])
    edited['annotations'] = edited['annotations'][1:]
    path = _write(str(round_trip['tmp'] / 'edited.json'), edited)
    with pytest.raises(UserError, match='no export .* waits for labels'):
        ActiveLearningRunner(
            copy.deepcopy(cfg), work_dir, annotations=path).run()
    assert _snapshot(work_dir) == before


def test_annotation_mode_refuses_a_box_budget_and_annotations_without_it(
        tmp_path, round_trip):
    cfg = copy.deepcopy(round_trip['cfg'])
    cfg.al_cfg.cost_budget = 10
    with pytest.raises(UserError, match='cost_budget cannot be used'):
        ActiveLearningRunner(cfg, str(tmp_path / 'a'))
    with pytest.raises(UserError, match='--annotations is for annotation'):
        ActiveLearningRunner(
            tiny_config('random_fcos_shapes.py'),
            str(tmp_path / 'b'),
            annotations=round_trip['answers'][0])


def test_without_a_test_split_isal_uses_the_labeled_images(tmp_path):
    """A folder of images and a labeled file only (val/test set to None,
    as the README's example): ISAL's reference set becomes the labeled
    images, the cycle is not evaluated, the export is written from the
    top-level test_pipeline."""
    from mmal.tasks import DetectionTask
    data = str(tmp_path / 'data')
    DetectionTask().generate_demo_data(
        data, num_train=24, num_val=8, img_size=64, max_objects=3, seed=0)
    gt = _read(osp.join(data, 'annotations', 'train.json'))
    keep = {im['id'] for im in gt['images'][:8]}
    labeled = _write(
        str(tmp_path / 'labeled.json'),
        dict(
            gt,
            images=[im for im in gt['images'] if im['id'] in keep],
            annotations=[
                a for a in gt['annotations'] if a['image_id'] in keep
            ]))
    cfg = tiny_config(
        'isal_fcos_shapes.py', **{
            'al_cfg.annotation': dict(
                image_dir=osp.join(data, 'images', 'train'),
                labeled_ann_file=labeled)
        })
    for key in ('val_dataloader', 'val_evaluator', 'test_dataloader',
                'test_evaluator'):
        cfg[key] = None
    # the config keeps the demo's demo_data: nothing uses it here, so the
    # demo images are not generated
    runner = ActiveLearningRunner(cfg, str(tmp_path / 'run'))
    assert not osp.exists(str(tmp_path / 'run' / 'data'))
    state = runner.run()
    assert runner.selector.reference == 'labeled'
    rec = state.record(0)
    assert rec['done'] == ['train', 'evaluate'] and 'metric' not in rec
    assert rec['images'] == 8 and len(state.pool) == 24  # the folder
    with open(str(tmp_path / 'run' / 'al.log')) as f:
        log = f.read()
    # the initial set is the labeled file's, not a random draw
    assert f'8 labeled: the images of {labeled}' in log
    assert 'at random' not in log
    # the summary has cycle 0's row without a metric
    summary = log[log.index('active learning summary'):].splitlines()
    row = [c.strip() for c in summary[2].split('|')]
    boxes = sum(a['image_id'] in keep for a in gt['annotations'])
    assert row == ['0', '8', str(boxes), '-', '-'] and rec['cost'] == boxes
    assert '4 images to label' in log
    manifest = _read(
        osp.join(
            str(tmp_path / 'run'), 'cycle_0', 'to_annotate', 'manifest.json'))
    assert len(manifest['selected']) == 4
    assert not {int(i) for i in manifest['selected']} & keep


# -- classification: "path class" lists and folders per class ----------------
def test_classification_round_trip_equals_the_simulation(tmp_path):
    """The classification demo: the simulation (random, 3 cycles), then
    the same in annotation mode, labels answered once as a ``path class``
    list and once as a folder per class; a bad class name is refused."""
    import shutil

    from conftest import tiny_cls_config
    name = 'random_resnet18-small_shapes-cls.py'
    sim_dir = str(tmp_path / 'sim')
    sim, _ = _simulate(
        tiny_cls_config(name, **{'al_cfg.num_cycles': 3}), sim_dir)
    data = osp.join(sim_dir, 'data')
    labeled = sorted(sim.pool.ids_labeled_in(0))
    rest = sorted(set(sim.pool.pool_ids) - set(labeled))
    with open(tmp_path / 'labeled.txt', 'w') as f:  # path class_name
        f.writelines(f'{p} {p.split("/")[1]}\n' for p in labeled)
    with open(tmp_path / 'unlabeled.txt', 'w') as f:
        f.writelines(f'{p}\n' for p in rest)
    cfg = tiny_cls_config(
        name, **{
            'al_cfg.num_cycles': 3,
            'al_cfg.annotation': dict(
                image_dir=data,
                labeled_ann_file=str(tmp_path / 'labeled.txt'),
                unlabeled_ann_file=str(tmp_path / 'unlabeled.txt'))
        })
    work_dir = str(tmp_path / 'run')
    ActiveLearningRunner(copy.deepcopy(cfg), work_dir).run()
    export = osp.join(work_dir, 'cycle_0', 'to_annotate')
    manifest = _read(osp.join(export, 'manifest.json'))
    assert sorted(manifest['selected']) == sorted(sim.pool.ids_labeled_in(1))
    with open(osp.join(export, 'labels_predicted.txt')) as f:
        pre = [ln.split() for ln in f.read().splitlines()]
    assert [p for p, _ in pre] == manifest['selected']
    classes = ['circle', 'cross', 'square', 'triangle']
    assert all(c in classes for _, c in pre)
    tasks = _read(osp.join(export, 'label_studio_tasks.json'))
    assert [
        t['predictions'][0]['result'][0]['value']['choices'][0] for t in tasks
    ] == [c for _, c in pre]
    # a wrong class name: refused, nothing changed
    bad = str(tmp_path / 'bad.txt')
    with open(bad, 'w') as f:
        f.writelines(f'{p} dog\n' for p in manifest['selected'])
    before = _snapshot(work_dir)
    with pytest.raises(UserError, match="class 'dog' is not among"):
        ActiveLearningRunner(
            copy.deepcopy(cfg), work_dir, annotations=bad).run()
    assert _snapshot(work_dir) == before
    # cycle 0 answered as a list, cycle 1 as a folder per class
    answer = str(tmp_path / 'answer0.txt')
    with open(answer, 'w') as f:
        f.writelines(f'{p} {p.split("/")[1]}\n' for p in manifest['selected'])
    ActiveLearningRunner(
        copy.deepcopy(cfg), work_dir, annotations=answer).run()
    selected = _read(
        osp.join(work_dir, 'cycle_1', 'to_annotate',
                 'manifest.json'))['selected']
    folder = tmp_path / 'answer1'
    for p in selected:
        os.makedirs(folder / p.split('/')[1], exist_ok=True)
        shutil.copy(osp.join(data, p), folder / p.split('/')[1])
    state = ActiveLearningRunner(
        copy.deepcopy(cfg), work_dir, annotations=str(folder)).run()
    assert state.pool.to_dict()['labeled'] == sim.pool.to_dict()['labeled']
    assert [r['done']
            for r in state.cycles] == [['train', 'evaluate', 'select'],
                                       ['train', 'evaluate', 'select'],
                                       ['train', 'evaluate']]
    with open(osp.join(work_dir, 'annotations', 'pool.txt')) as f:
        pool = dict(ln.rsplit(' ', 1) for ln in f.read().splitlines())
    for p in sim.pool.labeled_ids:  # the true class of every labeled image
        assert classes[int(pool[p])] == p.split('/')[1]


def test_tool_file_names_are_matched_to_the_selection():
    from mmal.annotation.label_import import match_file_name
    selected = {'a/x.jpg': 1, 'b/y.jpg': 2, 'c/y.jpg': 3, 'z.png': 4}
    by_base = {}
    for name in selected:
        by_base.setdefault(osp.basename(name), []).append(name)
    assert match_file_name('a/x.jpg', selected, by_base) == 'a/x.jpg'
    assert match_file_name('images/x.jpg', selected, by_base) == 'a/x.jpg'
    assert match_file_name('C:\\data\\x.jpg', selected, by_base) == 'a/x.jpg'
    assert match_file_name('/data/upload/3/1a2b3c4d-z.png', selected,
                           by_base) == 'z.png'
    assert match_file_name('images/y.jpg', selected, by_base) == ''  # 2
    assert match_file_name('b/y.jpg', selected, by_base) == 'b/y.jpg'
    assert match_file_name('q.jpg', selected, by_base) == ''


def test_an_unreadable_image_in_the_folder_is_named_or_dropped(tmp_path):
    from PIL import Image

    from mmal.annotation import build_pool
    from mmal.utils import DataError
    folder = tmp_path / 'images'
    folder.mkdir()
    Image.new('RGB', (20, 10)).save(folder / 'a.jpg')
    Image.new('RGB', (30, 40)).save(folder / 'b.png')
    (folder / 'broken.jpg').write_text('not an image')
    labeled = _write(
        str(tmp_path / 'labeled.json'),
        dict(
            images=[dict(id=7, file_name='a.jpg', width=20, height=10)],
            annotations=[
                dict(
                    id=1,
                    image_id=7,
                    category_id=3,
                    bbox=[1, 1, 5, 5],
                    area=25,
                    iscrowd=0)
            ],
            categories=[dict(id=3, name='dog')]))
    with pytest.raises(DataError, match='broken.jpg'):
        build_pool(['cat', 'dog'], str(folder), labeled)
    pool = build_pool(['cat', 'dog'], str(folder), labeled, policy='drop')
    assert [(im['id'], im['file_name'], im['width'], im['height'])
            for im in pool['images']] == [(7, 'a.jpg', 20, 10),
                                          (8, 'b.png', 30, 40)]
    # the category is mapped by name to the config's order
    assert pool['annotations'][0]['category_id'] == 2
    assert pool['categories'] == [
        dict(id=1, name='cat'), dict(id=2, name='dog')
    ]


# -- one export for CVAT and Label Studio; one box per object -------------
def test_images_txt_keeps_plain_paths_when_label_studio_has_a_prefix(tmp_path):
    """``image_root`` (Label Studio's URL prefix) goes into the tasks file
    only; images.txt lists the files under ``image_dir``; the labeling
    config beside the tasks names the pool's categories."""
    import xml.etree.ElementTree as ET

    from mmal.annotation.export_writers import write_export
    images = [
        dict(id=7, file_name='a b.jpg', width=40, height=20),
        dict(id=3, file_name='sub/c.png', width=10, height=10)
    ]
    preds = {'7': dict(bboxes=[[0, 0, 20, 10]], scores=[0.9], labels=[1])}
    paths = write_export(
        str(tmp_path), images, preds, {
            '7': 0.5,
            '3': None
        }, ['cat', 'dog "big"'], '/data/imgs', '/data/local-files/?d=imgs',
        dict(cycle=0))
    with open(paths['list']) as f:
        assert f.read().splitlines() == [
            '/data/imgs/a b.jpg', '/data/imgs/sub/c.png'
        ]
    tasks = _read(paths['label_studio'])
    assert [t['data']['image'] for t in tasks] == [
        '/data/local-files/?d=imgs/a b.jpg',
        '/data/local-files/?d=imgs/sub/c.png'
    ]
    assert tasks[0]['predictions'][0]['result'][0]['value'][
        'rectanglelabels'] == ['dog "big"']
    view = ET.parse(paths['label_config']).getroot()
    assert view.tag == 'View'
    assert view.find('Image').attrib == dict(name='image', value='$image')
    labels = view.find('RectangleLabels')
    assert labels.attrib == dict(name='label', toName='image')
    assert [x.attrib['value'] for x in labels] == ['cat', 'dog "big"']


def test_classification_label_config_lists_the_classes(tmp_path):
    import xml.etree.ElementTree as ET

    from mmal.annotation.class_list import write_class_export
    images = [dict(id='x/1.png', file_name='x/1.png')]
    paths = write_class_export(
        str(tmp_path), images, {'x/1.png': dict(label=1, score=0.8)},
        {'x/1.png': 0.1}, ['circle', 'square'], '/imgs', 'http://h/?d=',
        dict(cycle=2))
    with open(paths['list']) as f:
        assert f.read() == '/imgs/x/1.png\n'
    assert _read(paths['label_studio'])[0]['data']['image'] == \
        'http://h/?d=x/1.png'  # appended to a query prefix
    choices = ET.parse(paths['label_config']).getroot().find('Choices')
    assert choices.attrib == dict(
        name='label', toName='image', choice='single')
    assert [c.attrib['value'] for c in choices] == ['circle', 'square']


def test_agnostic_nms_keeps_one_box_per_object():
    """One object predicted as three classes (the same box) and a
    neighbour overlapping it by IoU 1/3: the best of the three and the
    neighbour stay at 0.7; 0.3 drops the neighbour too."""
    boxes = torch.tensor([[0., 0., 10., 10.], [0., 0., 10., 10.],
                          [0.5, 0., 10.5, 10.], [5., 0., 15., 10.]])
    scores = torch.tensor([0.36, 0.39, 0.32, 0.5])
    assert agnostic_nms(boxes, scores, 0.7).tolist() == [3, 1]
    assert agnostic_nms(boxes, scores, 0.3).tolist() == [3]
    assert agnostic_nms(boxes[:0], scores[:0], 0.7).tolist() == []


@pytest.mark.parametrize('iou', [0, 1.5, 'x', True])
def test_a_bad_nms_iou_is_refused(iou):
    from mmal.engine.annotation_mode import resolve_annotation_cfg
    from mmal.utils import ConfigError
    with pytest.raises(ConfigError, match='pre_annotation_nms_iou'):
        resolve_annotation_cfg(
            dict(
                image_dir='x',
                labeled_ann_file='y',
                pre_annotation_nms_iou=iou))
    assert resolve_annotation_cfg(
        dict(image_dir='x', labeled_ann_file='y',
             pre_annotation_nms_iou=None))['pre_annotation_nms_iou'] is None


# -- labeling takes days: the work dir may move meanwhile --------------------
def test_a_work_dir_moved_between_export_and_import_continues(
        simulation, tmp_path):
    """Export, move the whole work dir (the pool file in it is recorded
    relative to it), import the labels in the new place: cycle 1 trains
    on them. A moved image folder is named with its config key."""
    import shutil
    cfg, gt = _annotation_config(simulation[0], tmp_path)
    cfg.merge_from_dict({
        'al_cfg.num_cycles': 2,
        'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 1
    })
    old, new = str(tmp_path / 'old'), str(tmp_path / 'moved' / 'run')
    ActiveLearningRunner(copy.deepcopy(cfg), old).run()
    export = osp.join(old, 'cycle_0', 'to_annotate')
    answer = _answer(export, gt, str(tmp_path / 'answer.json'))
    shutil.move(old, new)
    state = ActiveLearningRunner(
        copy.deepcopy(cfg), new, annotations=answer).run()
    assert [r['done']
            for r in state.cycles] == [['train', 'evaluate', 'select'],
                                       ['train', 'evaluate']]
    selected = _read(osp.join(new, 'cycle_0', 'selection.json'))['selected']
    assert sorted(state.pool.ids_labeled_in(1)) == sorted(selected)
    assert not osp.exists(old)
    # the user's image folder moved too: named, with the key that sets it
    gone = copy.deepcopy(cfg)
    gone.al_cfg.annotation.image_dir = str(tmp_path / 'nowhere')
    with pytest.raises(UserError) as err:
        ActiveLearningRunner(gone, new)
    assert str(err.value) == (
        f'al_cfg.annotation.image_dir: {tmp_path / "nowhere"} does not '
        "exist (the pool's images moved? set al_cfg.annotation.image_dir to "
        'their folder)')
