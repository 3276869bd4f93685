"""T-Miner: generative Trojan detection for text classifiers (Azizi et al., USENIX Security 2021).

``rbl.create_detector("tminer").scan(model) -> Detection``. The defender has the suspicious
model only: black-box queries, its vocabulary (``Model.vocab``) and its last hidden layer
(``net.hidden``, see ``robustbench_lite.zoo._text_nets.TextClassifier``). **No training data
and no clean inputs are used**: the ``data`` argument of :meth:`TMiner.scan` is ignored, and
every input comes from ``_tminer_synth`` (nonsensical sentences of vocabulary words labelled by
querying the model).

Pipeline (per direction source -> target of the binary task, both directions scanned):
1. Perturbation generator (``_tminer_generator``) trained on synthetic sentences of both classes.
2. Candidates: perturbation phrases of the generator's flipped-code decodes of synthetic
   source-class sentences; kept when their flip rate on other synthetic source-class
   sentences exceeds ``flip_threshold`` (0.6, ``frb_threshold`` of the released code).
3. Trojan identifier (``_tminer_identify``): kept candidates plus auxiliary phrases of
   target-leaning words, last hidden layer, min-max scaling, PCA (99%), DBSCAN with an
   automatic eps; candidates that DBSCAN marks as noise are the recovered triggers.

A source class that the model never predicts on synthetic sentences (a collapsed model) is
skipped and listed in ``evidence["skipped_sources"]``.

The model is flagged when at least one trigger is recovered; ``score`` is the number of
recovered trigger phrases and ``threshold`` is 1. Evidence: ``triggers`` (phrases),
``candidates`` (phrase, direction, flip rate, outlier), ``eps`` and ``eps_sensitivity``
(number of outlier candidates for each eps scale in ``eps_sweep``), ``time_s``.

Where the trigger was lost before (diagnosed stage by stage on a CNN trojaned with "notable
pulpy" at 1%, ASR 1.0): the generator. Its soft copy-or-generate gate fooled the classifier
with soft embedding mixtures while its greedy decodes rewrote 84% of the tokens, so all 20
candidates per direction were noise with flip rate 0 (the true trigger flips 0.86 of synthetic
source sentences). The generator now rewrites a 2-token span chosen by a pointer and is
trained through straight-through Gumbel-softmax samples (``_tminer_generator``); on that model
the decodes contain "pulpy", "pulpy pulpy" flips 0.91 and DBSCAN isolates it.

Deviations from the paper, for CPU budgets: a few thousand synthetic sentences (paper: 100k
pre-training + 20k), 1 + 3 epochs (paper: 5 + 40), 200 sentences for extraction and for the
flip rate (paper: 200 for the flip rate), 200 auxiliary phrases per length (paper: up to 1000),
the top 20 candidates per direction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robustbench_lite.defense import Detection, Detector
from robustbench_lite.errors import DataError
from robustbench_lite.model import Model
from robustbench_lite.registry import register_detector
from robustbench_lite.text import Vocabulary


@register_detector("tminer")
@dataclass(frozen=True)
class TMiner(Detector):
    """T-Miner trojan detector for binary text classifiers (module docstring).

    Args:
        n_words: words per synthetic sentence (a "." is appended when the vocabulary has one).
        n_train: synthetic sentences for the generator (half per class).
        ae_epochs, joint_epochs: generator pre-training and joint epochs.
        tau: Gumbel-softmax temperature.
        n_extract, n_flip: synthetic source sentences for candidate extraction / flip rates.
        max_candidates: most frequent perturbation phrases tested per direction.
        flip_threshold: minimum flip rate of a kept candidate.
        n_aux: auxiliary phrases per candidate length.
        aux_pool: auxiliary phrases use the ``aux_pool`` words with the highest single-word
            probability of the target class.
        pca_variance: variance kept by PCA.
        eps_scale: multiplies the automatic DBSCAN eps for the verdict.
        eps_sweep: eps scales reported in ``evidence["eps_sensitivity"]``.
        seed: seeds every random choice and the generator's initialisation.
        generator: extra :class:`GeneratorConfig` fields as (name, value) pairs, e.g.
            ``(("span", 3),)`` (a tuple, so the detector stays hashable and its repr keys caches).
    """

    n_words: int = 15
    n_train: int = 1000
    ae_epochs: int = 1
    joint_epochs: int = 3
    tau: float = 0.5
    n_extract: int = 200
    n_flip: int = 200
    max_candidates: int = 20
    flip_threshold: float = 0.6
    n_aux: int = 200
    aux_pool: int = 250
    pca_variance: float = 0.99
    eps_scale: float = 1.0
    eps_sweep: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0)
    seed: int = 0
    generator: tuple[tuple[str, Any], ...] = ()

    def scan(self, model: Model, data: Any = None) -> Detection:
        """Scan ``model`` (a 2-class text model); ``data`` is ignored (T-Miner uses none)."""
        from robustbench_lite.defenses import _tminer_generator as G

        from robustbench_lite.zoo._text_nets import require_text_classifier

        start = time.perf_counter()
        net = require_text_classifier(model.net, who="tminer")
        vocab = model.vocab
        if not isinstance(vocab, Vocabulary):
            raise DataError(f"tminer needs Model.vocab to be a Vocabulary; {model.name} has {type(vocab).__name__}")
        if model.num_classes not in (None, 2):
            raise DataError(f"tminer scans binary classifiers; {model.name} has {model.num_classes} classes")
        length = model.input_shape[0] if model.input_shape else self.n_words + 4
        gen = torch.Generator().manual_seed(self.seed)
        ctx = _Context(model, vocab, length, gen, self)
        cfg = G.GeneratorConfig(ae_epochs=self.ae_epochs, joint_epochs=self.joint_epochs, tau=self.tau,
                                **dict(self.generator))
        parts, classes = [], []
        for c in (0, 1):
            try:
                parts.append(ctx.sentences(c, self.n_train // 2))
                classes.append(c)
            except DataError:  # the model (almost) never predicts c: no direction from c
                continue
        if not parts:
            raise DataError(f"{model.name} puts no synthetic sentence in either class; tminer cannot scan it")
        x_syn = torch.cat(parts)
        y_syn = torch.tensor(classes).repeat_interleave(self.n_train // 2)
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            generator = G.PerturbationGenerator(len(vocab), cfg)
        losses = G.train_generator(generator, net, x_syn, y_syn, cfg, gen)
        candidates: list[dict[str, Any]] = []
        sensitivity = {s: 0 for s in self._scales()}
        eps_info = {}
        for source in classes:
            found, info = self._direction(ctx, generator, net, source)
            candidates += found
            eps_info[f"{source}->{1 - source}"] = info
            for s, n in info.pop("outliers_by_scale", {}).items():
                sensitivity[s] += n
        triggers = [c["phrase"] for c in candidates if c["outlier"]]
        evidence = {
            "triggers": triggers, "candidates": candidates, "eps": eps_info,
            "eps_sensitivity": {str(s): n for s, n in sensitivity.items()},
            "generator_losses": losses, "n_synthetic": len(y_syn),
            "skipped_sources": [c for c in (0, 1) if c not in classes],
            "time_s": round(time.perf_counter() - start, 2),
        }  # fmt: skip
        return Detection(flagged=bool(triggers), score=float(len(triggers)), threshold=1.0, evidence=evidence)

    def _scales(self) -> list[float]:
        return sorted({*self.eps_sweep, self.eps_scale})

    def _direction(self, ctx: _Context, generator: Any, net: Any, source: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        from robustbench_lite.defenses import _tminer_identify as ident

        target = 1 - source
        vocab = ctx.vocab
        src = ctx.sentences(source, self.n_extract)
        with torch.no_grad():
            decoded = generator.decode(src, torch.full((len(src),), target), mode="greedy")
        ignore = [vocab.id(".")] if "." in vocab else []
        phrases = ident.extract_candidates(decoded, src, vocab, top=self.max_candidates, ignore=ignore)
        flip_src = ctx.sentences(source, self.n_flip)
        rates = ident.flip_rates(lambda x: ctx.predict(x) == target, phrases, flip_src,
                                 pad_id=vocab.pad_id, generator=ctx.gen)
        kept = [(p, r) for p, r in zip(phrases, rates) if r > self.flip_threshold]
        info: dict[str, Any] = {"n_candidates": len(phrases), "n_kept": len(kept)}
        if not kept:
            return [], info
        aux = self._auxiliary(ctx, target, [len(p) for p, _ in kept])
        points = [p for p, _ in kept] + aux
        ids = torch.full((len(points), ctx.length), vocab.pad_id, dtype=torch.int64)
        for i, p in enumerate(points):
            ids[i, : len(p)] = torch.tensor(p)
        with torch.no_grad():
            feats = net.hidden(ids).numpy().astype(np.float64)
        emb = ident.embed_points(feats, self.pca_variance)
        eps, min_samples, found = ident.find_outliers(emb, len(kept), eps_scales=self._scales())
        info.update(eps=eps, min_samples=min_samples, n_aux=len(aux), n_points=len(points),
                    outliers_by_scale={s: len(v) for s, v in found.items()})
        outliers = set(found[self.eps_scale])
        out = [{"phrase": vocab.decode(list(p)), "direction": f"{source}->{target}", "flip_rate": round(r, 4),
                "outlier": i in outliers} for i, (p, r) in enumerate(kept)]
        return out, info

    def _auxiliary(self, ctx: _Context, target: int, lengths: list[int]) -> list[tuple[int, ...]]:
        """Auxiliary phrases of target-leaning words that the classifier puts in ``target``."""
        from robustbench_lite.defenses import _tminer_identify as ident

        words = torch.tensor(ctx.vocab.words(), dtype=torch.int64)
        p = ctx.scores[words, target]
        pool = words[p.topk(min(self.aux_pool, len(words))).indices]
        aux = ident.auxiliary_phrases(pool, lengths, self.n_aux, ctx.gen)
        ids = torch.full((len(aux), 3), ctx.vocab.pad_id, dtype=torch.int64)
        for i, a in enumerate(aux):
            ids[i, : len(a)] = torch.tensor(a)
        keep = ctx.predict(ids) == target
        chosen = [a for a, k in zip(aux, keep.tolist()) if k]
        return chosen if len(chosen) >= 10 else aux


class _Context:
    """What one scan shares: the model, vocabulary, sequence length, generator, word scores."""

    def __init__(self, model: Model, vocab: Vocabulary, length: int, gen: torch.Generator, cfg: TMiner) -> None:
        from robustbench_lite.defenses import _tminer_synth as S

        self.model, self.vocab, self.length, self.gen, self.cfg = model, vocab, length, gen, cfg
        self.scores = S.word_scores(model, vocab, length)
        self.end_id = vocab.id(".") if "." in vocab else None

    def predict(self, ids: torch.Tensor) -> torch.Tensor:
        """Predicted class (N,) of token ids (N, T)."""
        from robustbench_lite.defenses import _tminer_synth as S

        return S.predict(self.model, ids, self.length, self.vocab.pad_id).argmax(dim=1)

    def sentences(self, label: int, n: int) -> torch.Tensor:
        """``n`` synthetic sentences classified as ``label``."""
        from robustbench_lite.defenses import _tminer_synth as S

        return S.class_sentences(self.model, self.vocab, self.scores, label, n, self.cfg.n_words, self.length,
                                 end_id=self.end_id, generator=self.gen)
