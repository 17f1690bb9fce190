"""PPAL's category-conditioned matching similarity (CCMS) as a distance.

Stage 2 of PPAL (Yang, Huang & Crowley, "Plug and Play Active Learning
for Object Detection", CVPR 2024) clusters the candidate images with the
distance ``D = 1 - S``, where the similarity ``S`` of two images matches
every confident detection of one image with the most similar detection of
the *same predicted category* in the other. :func:`ccms_distances`
computes the ``N x N`` matrix with the semantics of the official code
(``get_img_score_distance_matrix_slow`` of ``ChenhongyiYang/PPAL``,
``score_thr=0.05, same_label=True, metric='cosine'``), written from its
behaviour, not its code.

The official builds, for every image, several ``(N, 100, 100)`` tensors
(every detection of that image against every detection of every image).
Here only the confident detections are kept and grouped by category, so
that the work is ``sum_c M_c^2 d`` (``M_c`` confident detections of
category ``c``) instead of ``N^2 100^2 d``, in blocks of bounded size.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch

#: added to the denominator of the score-weighted mean (official)
NORM_EPS = 1e-5


def _check_inputs(labels: Sequence[torch.Tensor],
                  scores: Sequence[torch.Tensor],
                  feats: Sequence[torch.Tensor],
                  det_index: Optional[Sequence[torch.Tensor]],
                  diag_quirk: bool, chunk_objects: int) -> None:
    """Raise ValueError unless the inputs are valid for
    :func:`ccms_distances`."""
    n = len(labels)
    if len(scores) != n or len(feats) != n:
        raise ValueError('ccms_distances: labels, scores and feats must have '
                         f'one entry per image, got {n}, {len(scores)} and '
                         f'{len(feats)}')
    if diag_quirk and det_index is None:
        raise ValueError('ccms_distances: diag_quirk needs det_index')
    if det_index is not None and len(det_index) != n:
        raise ValueError('ccms_distances: det_index must have one entry per '
                         f'image, got {len(det_index)} for {n} images')
    if isinstance(chunk_objects, bool) or not isinstance(chunk_objects, int) \
            or chunk_objects < 1:
        raise ValueError('ccms_distances: chunk_objects must be an integer '
                         f'>= 1, got {chunk_objects!r}')
    dims = set()
    for a in range(n):
        k = labels[a].shape[0] if labels[a].dim() == 1 else -1
        shapes_ok = k >= 0 and tuple(scores[a].shape) == (k, ) and \
            feats[a].dim() == 2 and feats[a].shape[0] == k
        if det_index is not None:
            shapes_ok &= tuple(det_index[a].shape) == (k, )
        if not shapes_ok:
            raise ValueError(
                f'ccms_distances: image {a}: expected labels (k,), scores '
                f'(k,), feats (k, d) (and det_index (k,)), got '
                f'{tuple(labels[a].shape)}, {tuple(scores[a].shape)}, '
                f'{tuple(feats[a].shape)}')
        if labels[a].is_floating_point() or not feats[a].is_floating_point():
            raise ValueError(f'ccms_distances: image {a}: labels must be '
                             'integers and feats floating point, got '
                             f'{labels[a].dtype} and {feats[a].dtype}')
        if k:
            dims.add(feats[a].shape[1])
    if len(dims) > 1:
        raise ValueError('ccms_distances: every image needs the same '
                         f'feature dimension, got {sorted(dims)}')


def _valid_objects(
    labels: Sequence[torch.Tensor], scores: Sequence[torch.Tensor],
    feats: Sequence[torch.Tensor], det_index: Optional[Sequence[torch.Tensor]],
    score_thr: float, dtype: torch.dtype, device: torch.device
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
           Optional[torch.Tensor], torch.Tensor]:
    """The valid detections of all images, sorted by category then image
    (stable: an image's detections keep their order).

    Returns:
        tuple: ``(image, label, score, feat, det, totals)``: image index
        (M, ), label (M, ), score (M, ) and L2-normalised feature (M, d)
        in ``dtype``, the detection index (M, ) or None, and per image the
        sum of its valid scores (N, ), float64; on ``device``.
    """
    parts: List[list] = [[], [], [], [], []]
    totals = torch.zeros(len(labels), dtype=torch.float64)
    for a in range(len(labels)):
        s = scores[a].detach().to(device)
        # in the scores' own dtype, as the official; index_select: boolean
        # masks of small 2-D tensors are slow on the CPU
        keep = torch.nonzero(s > score_thr).squeeze(1)
        if keep.numel() == 0:
            continue
        s = s.index_select(0, keep)
        parts[0].append(keep.new_full((keep.numel(), ), a))
        parts[1].append(labels[a].detach().to(device).index_select(0, keep))
        parts[2].append(s.to(dtype))
        parts[3].append(feats[a].detach().to(device).index_select(0, keep))
        if det_index is not None:
            parts[4].append(det_index[a].detach().to(device).index_select(
                0, keep))
        totals[a] = float(s.to(torch.float64).sum())
    totals = totals.to(device)
    if not parts[0]:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return (empty, empty, torch.zeros(0, dtype=dtype, device=device),
                torch.zeros(0, 0, dtype=dtype, device=device), None, totals)
    label = torch.cat(parts[1]).long()
    order = torch.sort(label, stable=True).indices
    feat = torch.cat(parts[3]).to(dtype)
    parts[3].clear()  # at most two copies of the features at a time
    # F.normalize in place: f / max(||f||, 1e-12)
    feat.div_(
        torch.linalg.vector_norm(feat, dim=1, keepdim=True).clamp_min_(1e-12))
    det = torch.cat(parts[4]).long().index_select(0, order) \
        if parts[4] else None
    return (torch.cat(parts[0]).index_select(0, order),
            label.index_select(0, order),
            torch.cat(parts[2]).index_select(0, order),
            feat.index_select(0, order), det, totals)


def _column_blocks(counts: List[int], chunk: int) -> List[Tuple[int, int]]:
    """Split consecutive segments (one image's detections of a category)
    into blocks of at most ``chunk`` detections, never splitting a segment
    (a segment longer than ``chunk`` is one block).

    Returns:
        list[tuple[int, int]]: ``(first segment, end segment)`` per block.
    """
    blocks, first, size = [], 0, 0
    for s, c in enumerate(counts):
        if size and size + c > chunk:
            blocks.append((first, s))
            first, size = s, 0
        size += c
    blocks.append((first, len(counts)))
    return blocks


def _segment_sums(values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Sums of consecutive row segments of ``values``.

    The first row of every segment, then the second rows added to the
    segments that have one, and so on: a fixed order of additions (each
    ``index_add_`` has distinct targets), hence deterministic on every
    device, unlike one ``index_add_`` with repeated targets on CUDA.

    Args:
        values (Tensor): Shape (R, n).
        counts (Tensor): Segment lengths summing to R, shape (s, ).

    Returns:
        Tensor: Shape (s, n), dtype of ``values``.
    """
    starts = counts.cumsum(0) - counts
    sums = values.index_select(0, starts)
    for r in range(1, int(counts.max())):
        more = torch.nonzero(counts > r).squeeze(1)
        sums.index_add_(0, more, values.index_select(0, starts[more] + r))
    return sums


def _accumulate_matches(out: torch.Tensor, image: torch.Tensor,
                        score: torch.Tensor, feat: torch.Tensor,
                        det: Optional[torch.Tensor], chunk: int) -> None:
    """Add, for one category, ``T[a, b] += sum_i s_i (1 + max_j cos(f_i,
    f_j))`` over a's detections ``i`` and b's detections ``j`` of the
    category, for every pair of images (a, b) that both have one; in
    place on ``out`` (N, N).

    ``image`` is sorted (one segment per image). Blocks: at most ``chunk``
    rows x one run of whole images of at most ``chunk`` columns (more
    only for one image with more than ``chunk`` detections).
    """
    col_images, col_counts = torch.unique_consecutive(
        image, return_counts=True)
    col_start = torch.cat([col_counts.new_zeros(1), col_counts.cumsum(0)])
    starts = col_start.tolist()
    for first, end in _column_blocks(col_counts.tolist(), chunk):
        c0, c1 = starts[first], starts[end]
        cols = feat[c0:c1]
        # each column's image within the block, 0 .. n_b - 1
        col_seg = torch.repeat_interleave(
            torch.arange(end - first, device=feat.device),
            col_counts[first:end])
        cu = col_images[first:end]
        for r0 in range(0, feat.shape[0], chunk):
            r1 = min(r0 + chunk, feat.shape[0])
            sim = feat[r0:r1] @ cols.T  # (R, C_b)
            sim.clamp_(-1.0, 1.0)  # distance 1 - cos in [0, 2]
            if det is not None:  # the official d[:, k, k] = 0
                sim.masked_fill_(det[r0:r1, None] == det[None, c0:c1], 1.0)
            best = sim.new_full((r1 - r0, end - first), -1.0)
            best.scatter_reduce_(1, col_seg.expand(r1 - r0, -1), sim, 'amax')
            del sim
            best.add_(1.0).mul_(score[r0:r1, None])
            ru, rc = torch.unique_consecutive(image[r0:r1], return_counts=True)
            out.index_put_((ru[:, None], cu[None, :]),
                           _segment_sums(best, rc).to(out.dtype),
                           accumulate=True)  # distinct (ru, cu) pairs


def _finish(out: torch.Tensor, totals: torch.Tensor,
            has_valid: torch.Tensor) -> None:
    """``out[a, b] = max(0, (2 S_a - T[a, b]) / (S_a + 1e-5))`` where b
    has a valid detection, else 0; in place, in ``out``'s dtype (no
    temporary of its size)."""
    s = totals.to(out.dtype)[:, None]
    inv = (1.0 / (totals + NORM_EPS)).to(out.dtype)[:, None]
    # rounding of T can give -1e-7 where every match has cosine 1
    out.neg_().add_(2 * s).mul_(inv).clamp_(min=0.0)
    out.index_fill_(1, torch.nonzero(~has_valid).squeeze(1), 0.0)


def symmetrize_(out: torch.Tensor, block: int) -> torch.Tensor:
    """``out = (out + out^T) / 2`` in place, ``block x block`` at a time
    (the official ``0.5 * (D + D^T)``; exactly symmetric).

    Args:
        out (Tensor): Shape (N, N).
        block (int): Side of the blocks, >= 1.

    Returns:
        Tensor: ``out``.
    """
    n = out.shape[0]
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        for j0 in range(i0, n, block):
            j1 = min(j0 + block, n)
            upper, lower = out[i0:i1, j0:j1], out[j0:j1, i0:i1]
            mean = 0.5 * (upper + lower.T)
            upper.copy_(mean)
            lower.copy_(mean.T)
    return out


def ccms_distances(labels: Sequence[torch.Tensor],
                   scores: Sequence[torch.Tensor],
                   feats: Sequence[torch.Tensor],
                   score_thr: float = 0.05,
                   diag_quirk: bool = False,
                   det_index: Optional[Sequence[torch.Tensor]] = None,
                   device: Optional[Union[str, torch.device]] = None,
                   chunk_objects: int = 4096) -> torch.Tensor:
    """PPAL's CCMS distance ``D = 1 - S`` between N images.

    Per image ``a``: its detections ``i`` with label ``l_i``, score
    ``s_i`` and feature ``f_i``; a detection is *valid* iff ``s_i >
    score_thr`` (strict; compared in the scores' dtype, as the official's
    torch comparison). Features are L2-normalised as by ``F.normalize``
    (``f / max(||f||, 1e-12)``: a zero feature stays zero, cosine 0 with
    everything). For images ``a != b``:

    * ``m_i(b) = min_j (1 - cos(f_i, f_j))`` over b's valid ``j`` with
      ``l_j = l_i``; ``m_i(b) = 2`` when b has valid detections but none
      of label ``l_i``;
    * ``D(a->b) = sum_i s_i m_i(b) / (sum_i s_i + 1e-5)`` over a's valid
      ``i``, when both images have a valid detection, else 0: an image
      without valid detection is at distance 0 from every image (the
      official's behaviour, which its code comments as a potential bug);
    * ``D[a, b] = (D(a->b) + D(b->a)) / 2``, exactly symmetric, and
      ``D[a, a] = 0``.

    ``diag_quirk=True`` reproduces the official ``d[:, k, k] = 0``: the
    k-th detection of a and the k-th detection of b (``det_index``, the
    detection's index in its image's list of 100, before the score
    filter) are at distance 0 whatever their features, when both are
    valid and of the same label. It ties similarity to score rank and is
    off by default.

    Rounding: cosines are clamped to [-1, 1] (so ``m_i <= 2``; the
    official zeroes an ``m_i`` that rounding pushes above 2, a case this
    clamp removes). The cosines and the best matches are computed in the
    features' precision, their score-weighted sums accumulate in the
    float32 output and the final entries are clamped at 0 (a pair whose
    matches all have cosine 1 could otherwise get -1e-7): entries agree
    with a float64 evaluation to a few 1e-7 (absolute, values in [0, 2]).

    Computation: the valid detections (``M`` in all) are grouped by
    category; for category ``c`` (``M_c`` detections) the cosines of
    blocks of at most ``chunk_objects`` rows x one run of whole images of
    at most ``chunk_objects`` columns are computed (one matrix product),
    reduced per row to the best match in each image (``scatter_reduce``
    'amax'), weighted by the scores, summed over each image's rows and
    added to the (N, N) output: ``sum_c M_c^2 d`` multiply-adds, against
    the official ``N^2 100^2 d``. Memory: the (N, N) float32 output (the
    official holds it too), a few copies of the valid detections' features
    (``M x d``, while they are gathered, normalised and sorted) and per
    block a few ``chunk_objects x chunk_objects`` temporaries (at most
    about 30 bytes per entry in float32, 40 in float64: ~0.5 GB at the
    default 4096, ~0.13 GB at 2048), whatever N; no
    (N, 100, 100) or (N, N, 100) tensor and no second (N, N) one (the
    final division and the symmetrisation work in place, the latter in
    blocks). The computation is deterministic on every device (no
    floating atomics).

    Args:
        labels (Sequence[Tensor]): Per image, the detections' labels, shape
            (k_i, ), integer.
        scores (Sequence[Tensor]): Per image, the scores, shape (k_i, ).
        feats (Sequence[Tensor]): Per image, the features, shape (k_i, d),
            floating point; d the same for all images. Computed in float64
            if any is float64, else in float32.
        score_thr (float): A detection counts iff its score is above it.
            Defaults to 0.05 (official).
        diag_quirk (bool): Reproduce the official diagonal quirk (see
            above). Defaults to False.
        det_index (Sequence[Tensor], optional): Per image, each
            detection's index in its image's original list, shape (k_i, ),
            integer. Needed by ``diag_quirk``, ignored without it.
        device (str | torch.device, optional): Where to compute and return
            the result. Defaults to the first feature tensor's device.
        chunk_objects (int): Side of the blocks of detections (see above).
            Defaults to 4096.

    Returns:
        Tensor: ``D``, shape (N, N), float32, on ``device``; symmetric,
        zero diagonal, entries in [0, 2].

    Raises:
        ValueError: On inputs whose lengths or shapes disagree, float
            labels, non-float features, ``diag_quirk`` without
            ``det_index`` or ``chunk_objects`` < 1.
    """
    _check_inputs(labels, scores, feats, det_index, diag_quirk, chunk_objects)
    n = len(labels)
    if device is None:
        device = feats[0].device if n else torch.device('cpu')
    device = torch.device(device)
    dtype = torch.float64 if any(f.dtype == torch.float64
                                 for f in feats) else torch.float32
    out = torch.zeros((n, n), dtype=torch.float32, device=device)
    if n == 0:
        return out
    with torch.no_grad():
        image, label, score, feat, det, totals = _valid_objects(
            labels, scores, feats, det_index if diag_quirk else None,
            score_thr, dtype, device)
        has_valid = torch.zeros(n, dtype=torch.bool, device=device)
        has_valid[image] = True
        _, per_label = torch.unique_consecutive(label, return_counts=True)
        start = 0
        for count in per_label.tolist():
            sl = slice(start, start + count)
            _accumulate_matches(out, image[sl], score[sl], feat[sl],
                                None if det is None else det[sl],
                                chunk_objects)
            start += count
        _finish(out, totals, has_valid)
        symmetrize_(out, chunk_objects)
        out.fill_diagonal_(0.0)
    return out
