"""The documentation's code examples run as written.

The "Add a selector" example (a selector built on ``pool_pass`` and
``order_by_score``) is executed from the text of
docs/en/advanced_guides/add_selector.md, registered, and
ranks the pool of a tiny untrained FCOS; its ranking is checked against
the same counts computed directly from ``adapter.predict_batch``.
"""
import re

from mmal.models import FCOSAdapter
from mmal.registry import SELECTORS
from mmal.testing import float64_mode
from conftest import REPO
from influence_reference import FCOS_TINY, tiny_detector

DOC = 'docs/en/advanced_guides/add_selector.md'


def _block(header: str) -> str:
    with open(f'{REPO}/{DOC}') as f:
        text = f.read()
    found = re.search(r'```python\n(' + re.escape(header) + r'\n.*?)```', text,
                      re.S)
    assert found, f'no python block starting with {header!r} in {DOC}'
    return found.group(1)


def test_the_add_a_selector_example_runs(tmp_path):
    namespace = {}
    exec(
        compile(_block('# my_selectors.py'), f'{DOC} my_selectors.py', 'exec'),
        namespace)
    try:
        model, adapter, context = tiny_detector(
            tmp_path,
            'isal_fcos_shapes.py',
            FCOSAdapter(),
            FCOS_TINY,
            lambda m: m.bbox_head.conv_cls.bias.zero_(),
            num_labeled=8)
        selector = SELECTORS.build(
            dict(type='FewestBoxesSelector', score_thr=0.275))
        # float64: batched and single-image scores agree to ~1e-15, far
        # below the spread of the scores around the threshold (~1e-3)
        with float64_mode(adapter, model):
            result = selector.rank(context)
            unlabeled = sorted(context.state.unlabeled_ids)
            counts = {}
            view = context.unlabeled_view()
            for item in context.loader(view, unlabeled):
                data = adapter.preprocess(model, item)
                pred = adapter.predict_batch(model, data)[0]
                counts[item['sample_id'][0]] = float((pred.scores
                                                      >= 0.275).sum())
        assert sorted(result.ranking) == unlabeled
        assert result.scores == counts
        assert len(set(counts.values())) > 1  # the order means something
        assert result.ranking == sorted(counts, key=lambda k: (counts[k], k))
    finally:
        SELECTORS.module_dict.pop('FewestBoxesSelector', None)
