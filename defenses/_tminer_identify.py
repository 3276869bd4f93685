"""T-Miner's candidate extraction, flip-rate filter and Trojan Identifier (outlier detection).

* :func:`extract_candidates`: greedy-decode the trained generator with the target-class code on
  synthetic source-class sentences; the perturbation candidates are the runs of output tokens
  absent from the input, cut into phrases of at most 3 words (each word of a longer run is
  also a candidate); ranked by how often they occur (``helper_candidates_topk.py``).
* :func:`flip_rates`: insert each candidate at a random position into synthetic source-class
  sentences; its flip rate is the fraction classified as the target class (kept when > 0.6).
* :func:`find_outliers`: candidates plus auxiliary phrases -> last hidden layer -> min-max
  scaling -> PCA (99% variance) -> DBSCAN (min_samples = ceil(ln N), eps from :func:`knee_eps`);
  candidates labelled noise (-1) are the recovered triggers (``script_internal_layer.py``).

Automatic eps (the released code reads it by hand from a plot): sort every point's mean
distance to its k = min_samples nearest neighbours ascending; eps is the value at the knee,
the point farthest below the chord from the first to the last value (the "kneedle" rule on the
normalised curve). ``eps_scale`` multiplies it; the detector reports the verdict over a sweep
of scales so the sensitivity is visible.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from robustbench_lite.worlds.text import Vocabulary, insert_phrase


def extract_candidates(
    decoded: torch.Tensor,
    inputs: torch.Tensor,
    vocab: Vocabulary,
    *,
    max_len: int = 3,
    top: int = 20,
    ignore: Sequence[int] = (),
) -> list[tuple[int, ...]]:
    """The ``top`` most frequent perturbation phrases (token-id tuples) of greedy decodes (N, T)."""
    skip = {vocab.pad_id, vocab.unk_id, *ignore}
    counts: Counter[tuple[int, ...]] = Counter()
    for out_row, in_row in zip(decoded.tolist(), inputs.tolist()):
        present = set(in_row)
        run: list[int] = []
        for tok in [*out_row, -1]:
            if tok != -1 and tok not in present and tok not in skip:
                run.append(tok)
                continue
            for i in range(0, len(run), max_len):
                counts[tuple(run[i : i + max_len])] += 1
            if len(run) > 1:
                counts.update((w,) for w in set(run))
            run = []
    return [p for p, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def flip_rates(
    predict_target: object,
    phrases: Sequence[tuple[int, ...]],
    source: torch.Tensor,
    *,
    pad_id: int,
    generator: torch.Generator,
) -> list[float]:
    """Flip rate of each phrase on synthetic source sentences ``source`` (N, T).

    ``predict_target(ids) -> (N,) bool`` says which rows the classifier puts in the target class.
    Sentences get one extra pad column so the phrase never pushes a word out.
    """
    width = source.shape[1] + 3
    base = torch.cat([source, torch.full((len(source), 3), pad_id, dtype=source.dtype)], dim=1)[
        :, :width
    ]
    rates = []
    for phrase in phrases:
        x = insert_phrase(base, list(phrase), pad_id=pad_id, generator=generator)
        rates.append(float(predict_target(x).float().mean()))  # type: ignore[operator]
    return rates


def auxiliary_phrases(
    target_words: torch.Tensor,
    lengths: Sequence[int],
    n_per_length: int,
    generator: torch.Generator,
) -> list[tuple[int, ...]]:
    """Random phrases of each length in ``lengths`` made of distinct ``target_words``."""
    out: list[tuple[int, ...]] = []
    for k in sorted(set(lengths)):
        keys = torch.rand(n_per_length, len(target_words), generator=generator)
        picks = target_words[keys.topk(min(k, len(target_words)), dim=1).indices]
        out.extend(tuple(int(v) for v in row) for row in picks)
    return list(dict.fromkeys(out))


def knee_eps(points: np.ndarray, k: int) -> float:
    """eps at the knee of the sorted mean k-nearest-neighbour distances (module docstring)."""
    d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    d.sort(axis=1)
    kd = np.sort(d[:, 1 : k + 1].mean(axis=1))
    if len(kd) < 3 or kd[-1] - kd[0] <= 1e-12:
        return float(max(kd[-1], 1e-6))
    xs = np.linspace(0.0, 1.0, len(kd))
    ys = (kd - kd[0]) / (kd[-1] - kd[0])
    knee = int(np.argmax(xs - ys))  # farthest below the chord y = x
    return float(max(kd[knee], 1e-6))


def embed_points(features: np.ndarray, variance: float = 0.99) -> np.ndarray:
    """Min-max scale each feature to [0, 1], then PCA keeping ``variance`` of the variance."""
    from sklearn.decomposition import PCA

    lo, hi = features.min(axis=0), features.max(axis=0)
    scaled = (features - lo) / np.where(hi - lo > 1e-12, hi - lo, 1.0)
    n_comp = min(scaled.shape) - 1
    if n_comp < 1:
        return scaled
    pca = (
        PCA(n_components=variance, svd_solver="full") if variance < 1 else PCA(n_components=n_comp)
    )
    return np.asarray(pca.fit_transform(scaled))


def find_outliers(
    points: np.ndarray, n_candidates: int, *, eps_scales: Sequence[float] = (1.0,)
) -> tuple[float, int, dict[float, list[int]]]:
    """DBSCAN noise among the first ``n_candidates`` rows of ``points``.

    Returns (auto eps, min_samples, {scale: indices of outlier candidates at eps * scale}).
    """
    from sklearn.cluster import DBSCAN

    min_samples = max(2, math.ceil(math.log(len(points))))
    eps = knee_eps(points, min_samples)
    found: dict[float, list[int]] = {}
    for s in eps_scales:
        labels = DBSCAN(eps=eps * s, min_samples=min_samples).fit_predict(points)
        found[s] = [i for i in range(n_candidates) if labels[i] == -1]
    return eps, min_samples, found
