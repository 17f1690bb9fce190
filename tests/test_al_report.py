"""The experiment report on synthetic state files whose means, savings and
spreads are computed by hand here (no training)."""
import os.path as osp
import subprocess
import sys

import pytest
from PIL import Image

from mmal.analysis import (ReportError, cost_to_reach, load_runs, make_report,
                           mean_curves, savings)
from mmal.structures import ALState, PoolState
from mmal.structures.run_files import STOP_SETTINGS
from conftest import REPO

POOL = [f'img{i:03d}' for i in range(200)]
SELECTOR_TYPES = dict(
    random='mmal.RandomSelector',
    isal='mmal.InfluenceSelector',
    entropy='mmal.EntropySelector',
    coreset='mmal.CoresetSelector')


def write_run(root,
              selector,
              seed,
              cost,
              metric,
              *,
              images=None,
              budget=10,
              num_cycles=None,
              finished=True,
              initial_seed=None,
              unit='boxes',
              setting='fcos_x'):
    """A run's ``al_state.json`` in ``root/<selector>_<setting>/seed_k``.

    ``metric`` in points (%); stored as a fraction like mmal does.
    ``num_cycles``: the configured cycles (default: as many as given).
    """
    name = f'{selector}_{setting}'
    n = len(cost)
    images = images or [10 * (i + 1) for i in range(n)]
    num_cycles = num_cycles or n
    pool = PoolState.initial(POOL, 10,
                             seed if initial_seed is None else initial_seed)
    cycles = [
        dict(
            cycle=c,
            done=['train', 'evaluate'] +
            (['select'] if c < num_cycles - 1 else []),
            images=images[c],
            cost=cost[c],
            cost_unit=unit,
            metric=metric[c] / 100,
            metric_key='coco/bbox_mAP') for c in range(n)
    ]
    settings = {
        'al_cfg.num_cycles': num_cycles,
        'al_cfg.target_metric': None,
        'al_cfg.target_tolerance': 0.0
    }
    meta = dict(
        config=f'configs/{name}.py',
        experiment={
            'al_cfg.seed': seed,
            'al_cfg.selector': {
                'type': SELECTOR_TYPES[selector]
            },
            'al_cfg.initial_size': 10,
            'al_cfg.budget': budget,
            'al_cfg.cost_budget': None,
            'train_dataloader.dataset': {
                'type': 'CocoDataset',
                'ann_file': '{data_root}/train.json',
                'pipeline': [selector]
            },  # pipelines may differ
            'test_dataloader.dataset': {
                'ann_file': '{data_root}/val.json'
            },
        },
        settings=settings)
    if finished:
        meta['stop'] = dict(
            reason='num_cycles',
            cycle=n - 1,
            **{k: settings[f'al_cfg.{k}']
               for k in STOP_SETTINGS})
    work_dir = osp.join(str(root), name, f'seed_{seed}')
    ALState(pool, meta, cycles).save(osp.join(work_dir, 'al_state.json'))
    return work_dir


C3 = [100, 200, 300]


@pytest.fixture
def experiment(tmp_path):
    """random / isal / entropy / coreset, seeds 0 and 1 (numbers below)."""
    write_run(tmp_path, 'random', 0, C3, [10, 20, 30])
    write_run(tmp_path, 'random', 1, C3, [10, 22, 34])
    write_run(tmp_path, 'isal', 0, [100, 210, 310], [10, 30, 40])
    write_run(tmp_path, 'isal', 1, [100, 190, 290], [10, 24, 36])
    write_run(tmp_path, 'entropy', 0, C3, [10, 15, 25])
    write_run(tmp_path, 'entropy', 1, C3, [10, 25, 35])
    write_run(tmp_path, 'coreset', 0, C3, [10, 30, 31])
    write_run(tmp_path, 'coreset', 1, C3, [10, 20, 34])
    return tmp_path


def test_cost_to_reach_interpolates_and_never_extrapolates():
    cost, metric = [100, 200, 300], [10.0, 20.0, 30.0]
    assert cost_to_reach(cost, metric, 15.0) == pytest.approx(150.0)
    assert cost_to_reach(cost, metric, 20.0) == 200.0  # exactly at a cycle
    assert cost_to_reach(cost, metric, 30.0) == 300.0
    assert cost_to_reach(cost, metric, 30.5) is None  # not reached
    assert cost_to_reach(cost, metric, 5.0) == 100.0  # starts above
    # the first crossing counts, not a later one after a dip
    assert cost_to_reach(cost, [10.0, 25.0, 18.0], 20.0) == \
        pytest.approx(100 + 100 * 10 / 15)


def test_means_over_seeds(experiment):
    curves = mean_curves(load_runs([str(experiment)]))
    assert list(curves) == [
        'coreset_fcos_x', 'entropy_fcos_x', 'isal_fcos_x', 'random_fcos_x'
    ]  # by name
    isal = curves['isal_fcos_x']
    assert isal.seeds == [0, 1]
    assert isal.cost.tolist() == [100, 200, 300]
    assert isal.cost_min.tolist() == [100, 190, 290]
    assert isal.cost_max.tolist() == [100, 210, 310]
    assert isal.metric.tolist() == pytest.approx([10, 27, 38])
    assert isal.metric_min.tolist() == pytest.approx([10, 24, 36])
    assert isal.metric_max.tolist() == pytest.approx([10, 30, 40])
    # 10k x metric / cost, mean of the two runs' values
    assert isal.efficiency[1] == pytest.approx(
        (1e4 * 30 / 210 + 1e4 * 24 / 190) / 2)
    assert isal.images.tolist() == [10, 20, 30]


def test_savings_by_hand(experiment):
    runs = load_runs([str(experiment)])
    res = {
        r.name: r
        for r in savings(runs, mean_curves(runs), 'random_fcos_x')
    }
    # target: random's final mean (30 + 34) / 2 = 32 at 300 boxes
    isal = res['isal_fcos_x']
    assert isal.mean.target == pytest.approx(32)
    assert isal.mean.reference_cost == 300
    # isal's mean (200, 27) -> (300, 38): 200 + 100 * 5 / 11
    assert isal.mean.cost == pytest.approx(200 + 500 / 11)
    assert isal.mean.saving == pytest.approx(100 - 500 / 11)
    assert isal.mean.percent == pytest.approx((100 - 500 / 11) / 3)
    # seed 0: target 30, reached at cycle 1 (210 boxes): 300 - 210
    assert isal.per_seed[0].saving == pytest.approx(90)
    # seed 1: target 34 between (190, 24) and (290, 36): 190 + 100 * 10/12
    assert isal.per_seed[1].saving == pytest.approx(300 - 190 - 1000 / 12)
    assert isal.spread == pytest.approx((110 - 1000 / 12, 90))
    assert not isal.spread_includes_zero
    # entropy: mean (10, 20, 30) never reaches 32; seed 0 never reaches 30
    ent = res['entropy_fcos_x']
    assert not ent.mean.reached and ent.mean.saving is None
    assert not ent.per_seed[0].reached
    assert ent.per_seed[1].saving == pytest.approx(300 - 290)
    assert ent.spread_includes_zero
    # core-set: seed 0 saves 100 (30 at 200), seed 1 reaches 34 at 300:
    # saving 0, so the spread [0, 100] includes zero
    core = res['coreset_fcos_x']
    assert core.per_seed[0].saving == pytest.approx(100)
    assert core.per_seed[1].saving == pytest.approx(0)
    assert core.spread_includes_zero
    # its mean (200, 25) -> (300, 32.5): 200 + 100 * 7 / 7.5
    assert core.mean.cost == pytest.approx(200 + 700 / 7.5)
    # the reference against itself: reached at its last cycle
    assert res['random_fcos_x'].mean.saving == pytest.approx(0)


def test_report_files_and_text(experiment, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('report'))
    report = make_report([str(experiment)], out)
    assert report.reference == 'random_fcos_x'
    md = report.markdown
    # "54.5 fewer boxes (18.2 %)": (100 - 500/11) and its share of 300
    assert '54.5 fewer boxes (18.2 %)' in md
    assert 'not reached' in md
    assert 'isal_fcos_x: every one of 2 seeds needs fewer boxes' in md
    assert ('coreset_fcos_x: the per-seed savings go from +0 to +100 boxes '
            'over 2 seeds: the spread includes zero') in md
    assert 'entropy_fcos_x: does not reach random_fcos_x' in md
    with open(osp.join(out, 'al_curves.csv')) as f:
        rows = f.read().splitlines()
    assert rows[0].startswith('selector,cycle,seeds,images,cost_mean')
    assert len(rows) == 1 + 4 * 3
    assert 'isal_fcos_x,1,2,20,200,190,210,27,24,30,' in '\n'.join(rows)
    with open(osp.join(out, 'al_savings.csv')) as f:
        savings_rows = f.read().splitlines()
    assert len(savings_rows) == 1 + 4 * 3  # mean + 2 seeds per selector
    assert 'entropy_fcos_x,0,30,300,,,,0' in savings_rows


def test_plot_is_a_png_with_one_curve_per_selector(experiment,
                                                   tmp_path_factory):
    out = str(tmp_path_factory.mktemp('plot'))
    report = make_report([str(experiment)], out)
    png = osp.join(out, 'al_curves.png')
    with open(png, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.format == 'PNG' and im.size[0] > 400
    with open(osp.join(out, 'al_curves.svg')) as f:
        svg = f.read()
    # two panels (boxes, images), one curve per selector in each
    for name in report.curves:
        assert svg.count(f'id="curve:{name}"') == 2
    assert svg.count('id="curve:') == 8


def test_classification_has_one_panel(tmp_path):
    for sel, m in (('random', [30, 50]), ('isal', [30, 60])):
        write_run(
            tmp_path,
            sel,
            0, [100, 200],
            m,
            images=[100, 200],
            unit='images',
            setting='cls')
    report = make_report([str(tmp_path)], str(tmp_path / 'rep'))
    with open(tmp_path / 'rep' / 'al_curves.svg') as f:
        assert f.read().count('id="curve:') == 2
    # isal reaches random's 50 at 100 + 100 * 20/30 images
    isal = next(r for r in report.savings if r.name == 'isal_cls')
    assert isal.mean.cost == pytest.approx(100 + 2000 / 30)
    # the cost is the images: no separate cost column
    assert '| images | images |' not in report.markdown
    assert '| selector | cycle | images | bbox_mAP (%)' in report.markdown


def test_curves_of_different_lengths(tmp_path):
    write_run(tmp_path, 'random', 0, C3, [10, 20, 30])
    write_run(tmp_path, 'random', 1, C3, [10, 22, 34])
    # isal seed 1 stopped after 2 cycles (e.g. its target was reached)
    write_run(tmp_path, 'isal', 0, C3, [10, 30, 40])
    write_run(tmp_path, 'isal', 1, C3[:2], [10, 36], num_cycles=2)
    report = make_report([str(tmp_path)], None)
    isal = report.curves['isal_fcos_x']
    assert isal.cycles.tolist() == [0, 1]  # the common cycles
    assert isal.metric.tolist() == pytest.approx([10, 33])
    assert 'isal_fcos_x: its seeds have 3/2 evaluated cycles' in \
        report.markdown
    res = {r.name: r for r in report.savings}
    # mean curve (100, 10) -> (200, 33) reaches 32 at 100 + 100 * 22 / 23
    assert res['isal_fcos_x'].mean.cost == pytest.approx(100 + 2200 / 23)
    # seed 1's own curve: target 34 reached at (200, 36): 100 + 100*24/26
    assert res['isal_fcos_x'].per_seed[1].cost == pytest.approx(100 +
                                                                2400 / 26)
    assert report.curves['random_fcos_x'].cycles.tolist() == [0, 1, 2]


def test_missing_seed_is_named(tmp_path):
    write_run(tmp_path, 'random', 0, C3, [10, 20, 30])
    write_run(tmp_path, 'random', 1, C3, [10, 22, 34])
    write_run(tmp_path, 'random', 2, C3, [10, 21, 33])
    write_run(tmp_path, 'isal', 0, C3, [10, 30, 40])
    report = make_report([str(tmp_path)], None)
    assert 'isal_fcos_x: seeds 1, 2 missing' in report.markdown
    res = {r.name: r for r in report.savings}
    assert sorted(res['isal_fcos_x'].per_seed) == [0]  # only shared seeds
    # one seed has no spread: it cannot exclude zero
    assert res['isal_fcos_x'].per_seed[0].saving > 0
    assert res['isal_fcos_x'].spread_includes_zero
    assert 'isal_fcos_x: one seed compared with random_fcos_x, no spread' \
        in report.markdown
    assert 'missing' in report.markdown.split('## Savings')[1]


def test_unfinished_runs_are_named_and_left_out(tmp_path):
    write_run(tmp_path, 'random', 0, C3, [10, 20, 30])
    write_run(tmp_path, 'isal', 0, C3, [10, 30, 40])
    # interrupted in cycle 1's training: one evaluated cycle of three
    write_run(tmp_path, 'isal', 1, C3[:1], [10], num_cycles=3, finished=False)
    report = make_report([str(tmp_path)], None)
    assert 'isal_fcos_x seed 1: unfinished (1 evaluated cycles' in \
        report.markdown
    assert report.curves['isal_fcos_x'].seeds == [0]
    used = make_report([str(tmp_path)], None, include_unfinished=True)
    assert used.curves['isal_fcos_x'].seeds == [0, 1]
    assert used.curves['isal_fcos_x'].cycles.tolist() == [0]
    # a run with a recorded stop under fewer cycles is unfinished too
    write_run(tmp_path, 'random', 1, C3[:2], [10, 22], num_cycles=2)
    state = ALState.load(
        osp.join(tmp_path, 'random_fcos_x', 'seed_1', 'al_state.json'))
    state.meta['settings']['al_cfg.num_cycles'] = 3  # rerun asked for 3
    state.save(osp.join(tmp_path, 'random_fcos_x', 'seed_1', 'al_state.json'))
    assert 'random_fcos_x seed 1: unfinished' in make_report([str(tmp_path)],
                                                             None).markdown


def test_runs_of_different_experiments_are_refused(tmp_path):
    write_run(tmp_path, 'random', 0, C3, [10, 20, 30])
    write_run(tmp_path, 'isal', 0, C3, [10, 30, 40], budget=20)
    with pytest.raises(
            ReportError,
            match=r'al_cfg\.budget: isal_fcos_x '
            r'seed 0: 20; random_fcos_x seed 0: 10'):
        load_runs([str(tmp_path)])


def test_another_initial_set_is_refused(tmp_path):
    write_run(tmp_path, 'random', 0, C3, [10, 20, 30])
    write_run(tmp_path, 'isal', 0, C3, [10, 30, 40], initial_seed=5)
    with pytest.raises(ReportError, match='started from other labeled'):
        load_runs([str(tmp_path)])


def test_two_runs_of_one_seed_are_refused(tmp_path):
    a = write_run(tmp_path / 'a', 'random', 0, C3, [10, 20, 30])
    b = write_run(tmp_path / 'b', 'random', 0, C3, [10, 20, 30])
    with pytest.raises(ReportError, match='two runs of random_fcos_x seed 0'):
        load_runs([a, b])


def test_reference_by_name_and_none(tmp_path):
    write_run(tmp_path, 'isal', 0, C3, [10, 30, 40])
    write_run(tmp_path, 'entropy', 0, C3, [10, 20, 30])
    report = make_report([str(tmp_path)], None)
    assert report.savings is None and '--reference' in report.markdown
    report = make_report([str(tmp_path)], None, reference='entropy')
    assert report.reference == 'entropy_fcos_x'
    isal = next(r for r in report.savings if r.name == 'isal_fcos_x')
    # 30 reached between (100, 10) and (200, 30): at 200
    assert isal.mean.saving == pytest.approx(100)


def test_cli(experiment, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('cli'))
    proc = subprocess.run([
        sys.executable, 'tools/analysis_tools/al_report.py',
        str(experiment), '--out-dir', out
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '## Savings at equal performance' in proc.stdout
    assert osp.isfile(osp.join(out, 'al_curves.png'))
    bad = subprocess.run([
        sys.executable, 'tools/analysis_tools/al_report.py',
        str(tmp_path_factory.mktemp('empty'))
    ],
                         cwd=REPO,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert bad.returncode == 2
    assert 'holds no active-learning run' in bad.stderr


def test_is_finished_rules():
    from mmal.structures.run_files import is_finished
    done = dict(done=['train', 'evaluate'])
    settings = {
        'al_cfg.num_cycles': 2,
        'al_cfg.target_metric': None,
        'al_cfg.target_tolerance': 0.0
    }
    stop = dict(
        reason='num_cycles',
        cycle=1,
        num_cycles=2,
        target_metric=None,
        target_tolerance=0.0)
    cycles = [dict(done=['train', 'evaluate', 'select']), done]
    assert is_finished(dict(settings=settings, stop=stop), cycles)
    # asked for more cycles (or another target) than the stop was under
    assert not is_finished(
        dict(settings=settings, stop=stop), cycles,
        dict(num_cycles=3, target_metric=None, target_tolerance=0.0))
    assert not is_finished(
        dict(settings=settings, stop=stop), cycles,
        dict(num_cycles=2, target_metric=0.5, target_tolerance=0.0))
    # every image labeled: nothing left whatever the cycles
    assert is_finished(
        dict(settings=settings, stop=dict(stop, reason='pool_labeled')),
        cycles, dict(num_cycles=9, target_metric=None, target_tolerance=0.0))
    # no stop recorded (an older mmal): the last cycle evaluated
    assert is_finished(dict(settings=settings), cycles)
    assert not is_finished(
        dict(settings=settings), [cycles[0], dict(done=['train'])])
    assert not is_finished(dict(settings=settings), cycles[:1])


def test_a_target_reached_at_the_shared_start_says_nothing(tmp_path):
    """Seed 2 starts (cycle 0, the initial set every selector of the seed
    shares) above random's final metric: its row says 'at start' for both
    selectors, it is left out of the spread, and the reference's own row
    is 0 for every seed."""
    write_run(tmp_path, 'random', 0, C3, [10, 20, 30])
    write_run(tmp_path, 'random', 1, C3, [10, 22, 34])
    write_run(tmp_path, 'random', 2, C3, [40, 25, 30])  # starts above 30
    write_run(tmp_path, 'isal', 0, C3, [10, 30, 40])  # 30 at 200
    write_run(tmp_path, 'isal', 1, C3, [10, 34, 36])  # 34 at 200
    write_run(tmp_path, 'isal', 2, C3, [40, 35, 45])
    report = make_report([str(tmp_path)], str(tmp_path / 'report'))
    res = {r.name: r for r in report.savings}
    ref, isal = res['random_fcos_x'], res['isal_fcos_x']
    # the reference against itself: 0 per seed, never 'at start'
    assert [ref.per_seed[s].saving for s in (0, 1, 2)] == [0, 0, 0]
    assert ref.mean.saving == 0 and ref.at_start_seeds == []
    # seed 2 of isal: reached at the start, no saving, out of the spread
    assert isal.at_start_seeds == [2]
    assert isal.per_seed[2].reached and isal.per_seed[2].saving is None
    assert isal.per_seed[2].percent is None
    assert isal.per_seed[0].saving == isal.per_seed[1].saving == 100
    assert isal.spread == (100, 100)
    assert not isal.spread_includes_zero  # 2 informative seeds, both > 0
    md = report.markdown
    assert '+100 / +100 / at start' in md
    assert '+0 / +0 / +0' in md  # the reference's row
    assert '[+100, +100]; 1 at start, left out' in md
    assert ('isal_fcos_x: seed 2 reached random_fcos_x\'s final metric at '
            'the initial labeled set') in md
    with open(osp.join(str(tmp_path / 'report'), 'al_savings.csv')) as f:
        rows = [line.split(',') for line in f.read().splitlines()]
    assert rows[0][-1] == 'reached_at_start'
    seed2 = next(r for r in rows if r[:2] == ['isal_fcos_x', '2'])
    assert seed2[5] == '' and seed2[-1] == '1'  # no saving; at start


def test_one_informative_seed_left_has_no_spread(tmp_path):
    """Two seeds, one reached at the start: one seed left, no spread."""
    write_run(tmp_path, 'random', 0, C3, [10, 20, 30])
    write_run(tmp_path, 'random', 1, C3, [40, 25, 30])
    write_run(tmp_path, 'isal', 0, C3, [10, 30, 40])
    write_run(tmp_path, 'isal', 1, C3, [40, 35, 45])
    report = make_report([str(tmp_path)], str(tmp_path / 'report'))
    isal = next(r for r in report.savings if r.name == 'isal_fcos_x')
    assert isal.spread == (100, 100) and isal.spread_includes_zero
    assert '1 seed left: no spread, nothing to conclude' in report.markdown
