"""The numeric half of the embedded diarizer: cluster window voiceprints into speakers, then
label short frames by their similarity to each speaker and clean the labels into turns.

Pure NumPy/SciPy and free of model code so it can be tested and tuned on stored embeddings.
Everything here is linear in the recording's length except the clustering, which sees at most
`max_points` windows (evenly spread over the recording) and hands every other window to the
nearest centroid afterwards: a 60-minute session stays a few megabytes, never a 9000 x 9000
distance matrix.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]
    Labels = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ClusterSettings:
    """How eagerly windows are split into speakers.

    `threshold` is the average-linkage cosine distance above which two groups of windows are
    different voices. With resemblyzer's 1.6 s windows, the most spread single voice measured
    (a real speaker cut from pyannote's sample) never needed more than 0.25 to merge, while
    the sample's two real speakers merge only at 0.31: 0.28 sits between. Two voices closer
    than that (two espeak-ng male variants) come out as one speaker. Groups smaller than
    `min_share` of the windows (and at least `min_windows`) are not speakers but outliers
    (laughs, coughs, overlap, a window straddling a turn change): they join the nearest real
    speaker instead of becoming one.
    """

    threshold: float = 0.28
    min_share: float = 0.1
    min_windows: int = 3
    max_points: int = 1500
    refine_iterations: int = 2


def normalise_rows(rows: Matrix) -> Matrix:
    import numpy as np

    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return cast("Matrix", (rows / np.maximum(norms, 1e-9)).astype(np.float32))


def speaker_centroids(
    embeddings: Matrix,
    usable: npt.NDArray[np.bool_],
    *,
    max_speakers: int,
    settings: ClusterSettings,
) -> Matrix:
    """One unit-length centroid per speaker found among the `usable` (full-length) windows.

    Agglomerative clustering with a distance threshold lets the count follow the recording
    (one voice stays one cluster); `max_speakers` only caps it, by merging the closest
    speakers' centroids. Too few usable windows (a few seconds of speech) means one speaker:
    there is not enough evidence to claim two.
    """
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage

    points = embeddings[usable] if usable.any() else embeddings
    if len(points) == 0:
        return np.zeros((0, embeddings.shape[1]), dtype=np.float32)
    if len(points) <= 2 * settings.min_windows or max_speakers <= 1:
        return normalise_rows(points.mean(axis=0, keepdims=True))
    if len(points) > settings.max_points:
        pick = np.unique(np.linspace(0, len(points) - 1, settings.max_points).round())
        points = points[pick.astype(np.int64)]

    tree = linkage(points.astype(np.float64), method="average", metric="cosine")
    labels = fcluster(tree, t=settings.threshold, criterion="distance")
    sizes = np.bincount(labels)
    smallest = max(settings.min_windows, math.ceil(settings.min_share * len(points)))
    large = [c for c in range(len(sizes)) if sizes[c] >= smallest]
    if not large:
        large = [int(sizes.argmax())]
    centroids = normalise_rows(np.stack([points[labels == c].mean(axis=0) for c in large]))
    weights = np.array([sizes[c] for c in large], dtype=np.float64)
    if len(centroids) > max_speakers:
        merged = fcluster(
            linkage(centroids.astype(np.float64), method="average", metric="cosine"),
            t=max_speakers,
            criterion="maxclust",
        )
        centroids = normalise_rows(
            np.stack(
                [
                    (centroids[merged == g] * weights[merged == g, None]).sum(axis=0)
                    for g in np.unique(merged)
                ]
            )
        )
    return _refine(points, centroids, smallest, settings.refine_iterations)


def _refine(points: Matrix, centroids: Matrix, smallest: int, iterations: int) -> Matrix:
    """A few k-means steps from the clustering's centroids: outliers have now joined a
    speaker, and a centroid that ends up with too few windows was a split of one voice."""
    import numpy as np

    for _ in range(iterations):
        nearest = (points @ centroids.T).argmax(axis=1)
        counts = np.bincount(nearest, minlength=len(centroids))
        keep = [k for k in range(len(centroids)) if counts[k] >= smallest] or [int(counts.argmax())]
        if len(keep) < len(centroids):
            centroids = centroids[keep]
            continue
        centroids = normalise_rows(
            np.stack([points[nearest == k].mean(axis=0) for k in range(len(centroids))])
        )
    return centroids


def frame_scores(
    starts: Sequence[float],
    ends: Sequence[float],
    similarities: Matrix,
    n_frames: int,
    step: float,
    focus: float = 0.75,
) -> tuple[Matrix, npt.NDArray[np.float32]]:
    """Per-frame score for each speaker: the average over the windows covering the frame,
    each weighted by a triangle peaking at `focus` (0 = window start, 1 = end). The peak sits
    past the centre because resemblyzer's voiceprint is an LSTM's last state, which reflects
    the end of its window more than the start; a window's edges are also where a turn change
    blurs it. Returns the scores and the total weight per frame (0 = no window covers it)."""
    import numpy as np

    speakers = similarities.shape[1]
    total = np.zeros((n_frames, speakers), dtype=np.float32)
    weight = np.zeros(n_frames, dtype=np.float32)
    for start, end, row in zip(starts, ends, similarities, strict=True):
        first = max(0, round(start / step))
        last = min(n_frames, max(first + 1, round(end / step)))
        length = last - first
        position = (np.arange(length, dtype=np.float32) + 0.5) / length
        taper = np.where(
            position <= focus, position / focus, (1 - position) / max(1e-6, 1 - focus)
        ).astype(np.float32)
        total[first:last] += taper[:, None] * row[None, :]
        weight[first:last] += taper
    covered = weight > 0
    total[covered] /= weight[covered, None]
    return total, weight


def majority_filter(labels: Labels, width: int, speakers: int) -> Labels:
    """Each label becomes the most common one within `width` frames around it: removes
    single-frame flips without moving real turn changes by more than half the width."""
    import numpy as np

    if width <= 1 or len(labels) == 0 or speakers <= 1:
        return labels
    half = width // 2
    onehot = np.zeros((len(labels) + 2 * half + 1, speakers), dtype=np.int64)
    onehot[np.arange(len(labels)) + half + 1, labels] = 1
    cumulative = onehot.cumsum(axis=0)
    counts = cumulative[width:] - cumulative[:-width]
    return cast("Labels", counts[: len(labels)].argmax(axis=1))


def runs(labels: Labels) -> list[tuple[int, int, int]]:
    """(first, end, label) for each run of equal labels."""
    import numpy as np

    if len(labels) == 0:
        return []
    edges = np.flatnonzero(np.diff(labels)) + 1
    bounds = [0, *edges.tolist(), len(labels)]
    return [(a, b, int(labels[a])) for a, b in itertools.pairwise(bounds)]


def absorb_short_runs(
    labels: Labels,
    scores: Matrix,
    shortest: int,
    breaks: npt.NDArray[np.bool_],
    keep_margin: float = 1.0,
) -> Labels:
    """Relabel runs shorter than `shortest` frames, the shortest first, to whichever
    neighbouring speaker the frames resemble more: a 0.3 s "turn" inside someone's sentence
    is noise. A run that fills a whole voiced region (`breaks` marks the first frame after a
    pause) is kept however short when its frames favour its speaker by `keep_margin` or more
    (in the scores' units): a clearly voiced "Yes." between pauses is a real turn, while a
    half-second cough that resembles no one is not."""
    import numpy as np

    pieces = [list(piece) for piece in runs(labels)]

    def whole_region(piece: list[int]) -> bool:
        first, end, label = piece
        if not breaks[first] or (end < len(labels) and not breaks[end]):
            return False
        mean = scores[first:end].mean(axis=0)
        others = np.delete(mean, label)
        return len(others) == 0 or float(mean[label] - others.max()) >= keep_margin

    while len(pieces) > 1:
        candidates = [i for i, piece in enumerate(pieces) if not whole_region(piece)]
        if not candidates:
            break
        index = min(candidates, key=lambda i: pieces[i][1] - pieces[i][0])
        first, end, _ = pieces[index]
        if end - first >= shortest:
            break
        mean = scores[first:end].mean(axis=0)
        options = [j for j in (index - 1, index + 1) if 0 <= j < len(pieces)]
        target = max(options, key=lambda j: float(mean[pieces[j][2]]))
        pieces[index][2] = pieces[target][2]
        # Fuse with every neighbour that now has the same label.
        lo, hi = index, index
        while lo > 0 and pieces[lo - 1][2] == pieces[index][2]:
            lo -= 1
        while hi + 1 < len(pieces) and pieces[hi + 1][2] == pieces[index][2]:
            hi += 1
        pieces[lo : hi + 1] = [[pieces[lo][0], pieces[hi][1], pieces[index][2]]]
    out = labels.copy()
    for first, end, label in pieces:
        out[first:end] = label
    return out
