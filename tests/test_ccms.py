"""PPAL's CCMS distance (:mod:`mmal.selectors.ccms`) against a brute-force
reference.

The reference (:func:`reference_distances`) is the definition of the
official semantics spelled out with Python loops over the pairs of images
and their detections, in float64: valid detections (score strictly above
the threshold), the best same-label match of each valid detection of
image a in image b (``1 - cos``; 2 when b has valid detections but none of
that label; 0 with the diagonal quirk for equal detection indices), the
score-weighted mean with ``+1e-5`` in the denominator, 0 when either image
has no valid detection, then ``(D + D^T) / 2`` and a zero diagonal.

The function returns float32 and accumulates the matches in float32, so
the comparisons allow ``ATOL`` (values lie in [0, 2]; float32 rounds at
~1.2e-7 relative, a few roundings per entry).
"""
import math

import numpy as np
import pytest
import torch

from mmal.selectors.ccms import ccms_distances, symmetrize_

ATOL = 5e-6
THR = 0.05


def reference_distances(labels,
                        scores,
                        feats,
                        thr=THR,
                        diag_quirk=False,
                        det_index=None) -> np.ndarray:
    """The CCMS distance, literally, with loops (float64)."""
    n = len(labels)
    lab = [[int(x) for x in t] for t in labels]
    sc = [[float(x) for x in t] for t in scores]
    fe = [np.asarray(t, dtype=np.float64) for t in feats]
    det = None if det_index is None else [[int(x) for x in t]
                                          for t in det_index]

    def cos(a, i, b, j):
        u, v = fe[a][i], fe[b][j]
        nu, nv = max(np.linalg.norm(u), 1e-12), max(np.linalg.norm(v), 1e-12)
        return float(np.dot(u / nu, v / nv))

    directed = np.zeros((n, n))
    for a in range(n):
        valid_a = [i for i in range(len(sc[a])) if sc[a][i] > thr]
        for b in range(n):
            valid_b = [j for j in range(len(sc[b])) if sc[b][j] > thr]
            if not valid_a or not valid_b:
                directed[a, b] = 0.0  # the official's empty-image case
                continue
            num = den = 0.0
            for i in valid_a:
                same = [j for j in valid_b if lab[b][j] == lab[a][i]]
                if not same:
                    m = 2.0
                else:
                    m = math.inf
                    for j in same:
                        d = 1.0 - cos(a, i, b, j)
                        if diag_quirk and det[a][i] == det[b][j]:
                            d = 0.0
                        m = min(m, d)
                num += sc[a][i] * m
                den += sc[a][i]
            directed[a, b] = num / (den + 1e-5)
    out = 0.5 * (directed + directed.T)
    np.fill_diagonal(out, 0.0)
    return out


def random_case(seed, n=7, max_k=8, classes=3, d=5, dtype=torch.float64):
    """Random detections with the special images the spec names: image 0
    without detection, image 1 with every score below the threshold,
    image 2 with one zero feature; scores often below the threshold."""
    g = torch.Generator().manual_seed(seed)
    labels, scores, feats = [], [], []
    for a in range(n):
        k = 0 if a == 0 else int(
            torch.randint(1, max_k + 1, (1, ), generator=g))
        labels.append(torch.randint(0, classes, (k, ), generator=g))
        s = torch.rand(k, generator=g, dtype=torch.float64)
        s = torch.where(s < 0.3, s * 0.1, s)  # ~1/3 at most 0.03
        if a == 1:
            s = s * THR * 0.99  # all below the threshold
        scores.append(s.to(dtype))
        f = torch.randn(k, d, generator=g, dtype=torch.float64)
        if a == 2:
            f[0] = 0.0
        feats.append(f.to(dtype))
    det_index = [torch.arange(len(x)) for x in labels]
    return labels, scores, feats, det_index


def check(labels, scores, feats, atol=ATOL, **kw):
    got = ccms_distances(labels, scores, feats, **kw)
    ref = reference_distances(labels, scores, feats, kw.get('score_thr', THR),
                              kw.get('diag_quirk', False), kw.get('det_index'))
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert torch.equal(got, got.T)  # exactly symmetric
    assert (got.diagonal() == 0).all()
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=0, atol=atol)
    return got, ref


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('diag_quirk', [False, True])
@pytest.mark.parametrize('chunk', [1, 3, 4096])
def test_matches_reference_on_random_cases(seed, diag_quirk, chunk):
    labels, scores, feats, det = random_case(seed)
    got, ref = check(
        labels,
        scores,
        feats,
        diag_quirk=diag_quirk,
        det_index=det,
        chunk_objects=chunk)
    # images without valid detection: distance 0 to everything
    assert (got[0] == 0).all() and (got[1] == 0).all()
    assert ref[3:, 3:].max() > 0  # the case is not trivial
    if diag_quirk and seed == 0:  # the quirk changes this case
        assert not torch.equal(got, ccms_distances(labels, scores, feats))


def test_many_objects_of_one_category_in_small_chunks():
    """One category with 60 valid detections in 12 images, cut into
    blocks of 7 (rows and whole-image column runs), two categories."""
    g = torch.Generator().manual_seed(11)
    labels = [torch.randint(0, 2, (9, ), generator=g) for _ in range(12)]
    scores = [
        0.06 + 0.9 * torch.rand(9, generator=g, dtype=torch.float64)
        for _ in range(12)
    ]
    feats = [
        torch.randn(9, 4, generator=g, dtype=torch.float64) for _ in range(12)
    ]
    det = [torch.arange(9) for _ in range(12)]
    for quirk in (False, True):
        default, _ = check(
            labels, scores, feats, diag_quirk=quirk, det_index=det)
        small, _ = check(
            labels,
            scores,
            feats,
            diag_quirk=quirk,
            det_index=det,
            chunk_objects=7)
        np.testing.assert_allclose(small.numpy(), default.numpy(), atol=ATOL)


def test_ties_and_duplicate_features():
    """Identical features in several images (cosine 1, distance 0),
    equal scores and repeated labels: the best match's value is the same
    whichever tied detection gives it."""
    base = torch.tensor([[1., 0., 0.], [0., 1., 0.], [1., 1., 0.]],
                        dtype=torch.float64)
    labels = [
        torch.tensor([0, 0, 1]),
        torch.tensor([0, 1, 1]),
        torch.tensor([0, 0, 0]),
        torch.tensor([1, 1])
    ]
    feats = [base, base[[1, 0, 2]], base, base[:2]]
    scores = [torch.full((len(x), ), 0.5, dtype=torch.float64) for x in labels]
    for quirk in (False, True):
        check(
            labels,
            scores,
            feats,
            diag_quirk=quirk,
            det_index=[torch.arange(len(x)) for x in labels])
    got = ccms_distances(labels[:1] * 2, scores[:1] * 2, feats[:1] * 2)
    assert got[0, 1] == 0  # an image and its copy (cosine 1 clamped)


def test_hand_computed_pair():
    """Two images: a has a cat (score 0.8, f = e1) and a dog (0.4, f =
    e2); b has a cat (0.5, f = (e1 + e2)/sqrt 2) and a low-score dog.
    a->b: cat 1 - 1/sqrt2, dog unmatched (2); b->a: cat 1 - 1/sqrt2."""
    labels = [torch.tensor([0, 1]), torch.tensor([0, 1])]
    scores = [
        torch.tensor([0.8, 0.4], dtype=torch.float64),
        torch.tensor([0.5, 0.05], dtype=torch.float64)  # 0.05: not valid
    ]
    feats = [
        torch.tensor([[2., 0.], [0., 3.]], dtype=torch.float64),
        torch.tensor([[1., 1.], [0., 1.]], dtype=torch.float64)
    ]
    c = 1 - 1 / math.sqrt(2)
    ab = (0.8 * c + 0.4 * 2) / (1.2 + 1e-5)
    ba = 0.5 * c / (0.5 + 1e-5)
    got = ccms_distances(labels, scores, feats)
    assert got[0, 1] == pytest.approx((ab + ba) / 2, abs=1e-6)
    assert got[0, 0] == got[1, 1] == 0


def test_diag_quirk_uses_the_detection_index():
    """Same label, orthogonal features: distance 1 without the quirk; 0
    with it between detections that share their index. det_index of a
    pre-filtered list (the selector keeps only valid detections) gives
    the same as the full list."""
    labels = [torch.tensor([0, 0]), torch.tensor([0, 0])]
    scores = [
        torch.tensor([0.9, 0.02], dtype=torch.float64),
        torch.tensor([0.9, 0.8], dtype=torch.float64)
    ]
    feats = [
        torch.tensor([[1., 0.], [0., 1.]], dtype=torch.float64),
        torch.tensor([[0., 1.], [0., 1.]], dtype=torch.float64)
    ]
    det = [torch.arange(2), torch.arange(2)]
    plain = ccms_distances(labels, scores, feats)
    quirk = ccms_distances(
        labels, scores, feats, diag_quirk=True, det_index=det)
    # a -> b: a's valid cat (e1) vs b's cats (e2): 1; b -> a: both 1
    assert plain[0, 1] == pytest.approx(
        0.5 * (0.9 / (0.9 + 1e-5) + 1.7 / (1.7 + 1e-5)), abs=1e-6)
    # quirk: the index-0 detections match (0); b's index 1 has no valid
    # index-1 partner in a: 1
    assert quirk[0, 1] == pytest.approx(0.5 * 0.8 / (1.7 + 1e-5), abs=1e-6)
    # det_index is ignored without the quirk
    assert torch.equal(
        ccms_distances(labels, scores, feats, det_index=det), plain)
    keep = [s > THR for s in scores]
    filtered = ccms_distances([x[k] for x, k in zip(labels, keep)],
                              [x[k] for x, k in zip(scores, keep)],
                              [x[k] for x, k in zip(feats, keep)],
                              diag_quirk=True,
                              det_index=[x[k] for x, k in zip(det, keep)])
    assert torch.equal(filtered, quirk)


def test_threshold_is_strict_and_in_the_scores_dtype():
    labels = [torch.tensor([0]), torch.tensor([0])]
    feats = [torch.tensor([[1., 0.]]), torch.tensor([[0., 1.]])]
    at = [torch.tensor([0.05]), torch.tensor([0.9])]  # float32(0.05)
    # float32 scores: 0.05f > 0.05 is False in torch (float32 compare)
    assert (ccms_distances(labels, at, feats) == 0).all()
    above = [torch.tensor([0.06]), torch.tensor([0.9])]
    assert ccms_distances(labels, above, feats)[0, 1] > 0.99
    exact = [torch.tensor([0.05], dtype=torch.float64), at[1].double()]
    assert (ccms_distances(labels, exact, feats) == 0).all()


def test_float32_features_and_sizes():
    labels, scores, feats, _ = random_case(5, n=9)
    check(
        labels, [s.float() for s in scores], [f.float() for f in feats],
        atol=2e-5)
    assert ccms_distances([], [], []).shape == (0, 0)
    one = ccms_distances(labels[3:4], scores[3:4], feats[3:4])
    assert one.shape == (1, 1) and one[0, 0] == 0
    none_valid = ccms_distances(labels[:2], scores[:2], feats[:2])
    assert (none_valid == 0).all()


def test_symmetrize_in_blocks():
    x = torch.randn(13, 13)
    expected = 0.5 * (x + x.T)
    for block in (1, 4, 13, 50):
        assert torch.equal(symmetrize_(x.clone(), block), expected)


@pytest.mark.parametrize('bad', [
    dict(scores=[torch.rand(2)]),
    dict(feats=[torch.rand(3, 4), torch.rand(2, 4)]),
    dict(feats=[torch.rand(2, 4), torch.rand(3, 5)]),
    dict(labels=[torch.rand(2), torch.tensor([0, 1, 1])]),
    dict(diag_quirk=True),
    dict(diag_quirk=True, det_index=[torch.arange(2)]),
    dict(chunk_objects=0),
])
def test_bad_inputs(bad):
    kw = dict(
        labels=[torch.tensor([0, 1]),
                torch.tensor([0, 1, 1])],
        scores=[torch.rand(2), torch.rand(3)],
        feats=[torch.rand(2, 4), torch.rand(3, 4)])
    kw.update(bad)
    with pytest.raises(ValueError):
        ccms_distances(**kw)
