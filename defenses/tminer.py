"""T-Miner: generative Trojan detection for text classifiers (Azizi et al., USENIX Security 2021).

``rbl.create_detector("tminer").scan(model) -> Detection``. The defender has the suspicious
model only: black-box queries, its vocabulary (``Model.vocab``) and its last hidden layer
(``net.hidden``, see ``robustbench_lite.worlds.text_nets.TextClassifier``). **No training data
and no clean inputs are used**: the ``data`` argument of :meth:`TMiner.scan` is ignored, and
every input comes from ``_tminer_synth`` (nonsensical sentences of vocabulary words labelled by
querying the model).

Pipeline (per direction source -> target of the binary task, both directions scanned):
1. Perturbation generator (``_tminer_generator``) trained on synthetic sentences of both classes.
2. Candidates: perturbation phrases of the generator's flipped-code decodes of synthetic
   source-class sentences, **plus** (deviation, ``search=True``) the phrases of a query beam
   search (``_tminer_search``); kept when their flip rate on other synthetic source-class
   sentences exceeds ``flip_threshold`` (0.6, ``frb_threshold`` of the released code).
3. Trojan identifier, two of them, both always run:
   * ``"dbscan"``, the paper's (``_tminer_identify``): kept candidates plus auxiliary phrases of
     target-leaning words, last hidden layer, min-max scaling, PCA (99%), DBSCAN with an
     automatic eps; candidates that DBSCAN marks as noise are triggers.
   * ``"dominance"`` (deviation, the default verdict): the best searched phrase of length 2 or
     3 is a trigger when it passes the flip filter and its gain exceeds that of the best phrase
     made of other words by more than ``dominance_threshold`` (1.27: 5% above the largest value,
     1.212, on 12 held-out clean models, ``benchmarks/tminer_calibration.py``).

Why the deviations (measured on the 40-model benchmark zoo, ``benchmarks/trojan_detection.py``,
with generator candidates and DBSCAN only, as in the paper): detection accuracy 0.625, FPR 0.25,
FNR 0.50, the trigger recovered on 7 of 20 trojaned models. On models 0-19, recorded stage by
stage, the generator wrote no trigger word at all for 6 of the 10 trojaned ones (mostly 2-3-word
triggers, whose single words flip nothing), and DBSCAN flagged natural sentiment phrases of all
5 clean CNNs: strong phrases such as "lovers loyal nation" flip 100% of synthetic sentences and
lie outside the cloud of random auxiliary phrases just as a trigger does. The search's top
single word is a trigger word on 19 of the 20 trojaned models (rank 1 on the 20th), and the
dominance test asks what the auxiliary phrases were meant to ask (is this phrase stronger than
anything natural?) against the strongest natural phrases instead of random ones. With both:
accuracy 0.925, FPR 0.05, FNR 0.10, the trigger recovered on 18 of 20.

A source class that the model never predicts on synthetic sentences (a collapsed model) is
skipped and listed in ``evidence["skipped_sources"]``.

The model is flagged when at least one trigger is recovered by the chosen ``identifier``.
With ``"dominance"``, ``score`` is the test's statistic (``evidence["dominance_max"]``: the
largest dominance among best phrases that pass the flip filter, 0 when none does) and
``threshold`` is ``dominance_threshold``, so flagged == score > threshold; with ``"dbscan"``,
``score`` is the number of recovered phrases and ``threshold`` is 1. Evidence:
``triggers`` (phrases of the chosen identifier), ``dominant_triggers`` and ``dbscan_triggers``
(each identifier's), ``candidates`` (phrase, direction, flip rate, origin, ``dominant``,
``dbscan_outlier``), ``directions`` (per direction: counts, DBSCAN eps, best and alternative
phrases and their dominance), ``eps_sensitivity`` (DBSCAN outlier candidates for each eps scale
in ``eps_sweep``), ``code_hash`` (``_tminer_version``: the hash of the detector's source
files, which keys cached verdicts), ``time_s``.

Issue 19 (sturdier, faster; measured on the development zoo, so development numbers):

* **One statistic**: the dominance test runs on its own random stream per direction
  (``_stream``: seeded by ``seed`` and the source class), never the generator's, so
  :meth:`TMiner.dominance` (the calibration) and :meth:`TMiner.scan` give the same statistic
  for the same ``seed``. Before, the scan drew after generator training (seed 8: 1.305 against
  1.309 in calibration).
* **The generator and DBSCAN run only on request** (``paper_identifier=True``, or
  ``identifier="dbscan"``): the dominance verdict never read them and they took ~35 of a
  scan's ~40 CPU seconds (LSTM). The paper's pipeline stays runnable:
  ``identifier="dbscan", search=False``.
* **Pruned search**: the neighbours of the best phrase are looked for among the
  ``search_neighbours`` (500) best single words instead of the whole vocabulary, and grown
  phrases are first scored on ``search_word_sentences`` sentences, the ``search_shortlist``
  (64) best then on all ``search_sentences`` (``_tminer_search.beam_phrases``). On 14
  development models (0-8, 10, 13, 17, 21, 23; eight of them within 0.1 of the threshold)
  the verdicts and trigger recovery are unchanged (the false positive on model 8 remains:
  1.291) and scans take about 2.5 (LSTM), 4 (BiLSTM), 7.5 (CNN) and 15 (transformer) CPU
  seconds on one core, against 41-111 s wall before.
* **The two failure modes, tried and left off by default** (options; development numbers on
  the development zoo re-trained for this run and on the first fresh zoo's five errors, which
  are development models from now on; the default statistic is the one before):

  - ``sentence_words="any"``: the dominance test's search and flip filter use synthetic
    sentences of words from the whole vocabulary that the model puts in the source class
    (``_tminer_synth.class_sentences``) instead of the source class's leaning words (the
    paper's kind of source-class input; ``"lean"``, the default). They are far less polar
    (median source margin about 2 logits against 5-10), so a trigger learnt from 1-2%
    poisoned data flips them (fresh transformer 5035, "flesh raunchy nelson" at 1.6%: 0.19 of
    the polar ones, 0.99 of these; the search then finds the trigger itself) and the clean
    CNNs' natural phrases dominate less (fresh 5025: 1.298 -> 1.194; 5049: 1.339 -> 1.294).
    But margins on them compress every dominance towards 1, trojans' most: LSTM trojans
    (development 1, 9) fell from 1.67 and 1.71 to 1.14 and 1.17, below the clean CNNs, and
    the recovered low-rate triggers were not dominant either (5035: 1.04-1.07; the natural
    3-word phrases gain as much). Net harm, so off.
  - ``dominance_reference="own"``: the alternative of length k avoids only the words of the
    best phrase of length k (``_tminer_search.search``), a reference of the phrase's own
    length and shape instead of one that loses the 3-5 strongest natural words. Clean: 5025
    1.298 -> 1.251, 5049 1.339 -> 1.321, development 8 1.291 -> 1.291; trojans: development
    3 1.396 -> 1.247, development 1 1.670 -> 1.503, development 9 1.712 -> 1.712. It lowers
    trojans as much as clean models, so off (``"best"``, the default).

  The paper's pipeline never reads these options (its generator uses leaning-word sentences
  and ``identifier="dbscan", search=False`` skips the dominance test), so its verdicts are
  unchanged.

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
the top 20 generator candidates per direction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robustbench_lite.core.defense import Detection, Detector
from robustbench_lite.core.errors import DataError, ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_detector
from robustbench_lite.worlds.text import Vocabulary

if TYPE_CHECKING:
    from ._tminer_search import SearchResult


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
        search: add the query-search phrases of ``_tminer_search`` to the DBSCAN identifier's
            candidates (a deviation from the paper; False gives it the generator's only). The
            dominance identifier always searches.
        identifier: ``"dominance"`` (the verdict of ``_tminer_search``'s dominance test, a
            deviation) or ``"dbscan"`` (the paper's Trojan Identifier); both run and both
            verdicts are in the evidence.
        dominance_threshold: a phrase is a trigger when its gain exceeds that of the best phrase
            of the same length made of other words by this factor (calibrated on clean models,
            ``benchmarks/tminer_calibration.py``).
        dominance_lengths: phrase lengths the dominance test looks at.
        search_sentences: synthetic source sentences that score the searched phrases.
        search_word_sentences: the first of them that score every single vocabulary word.
        search_pool: words the beam search tries adding at each step, from the best single words
            and as many from the best neighbours of the current best phrase.
        search_beam: phrases kept per length by the beam search.
        search_neighbours: the neighbours of the best phrase are looked for among this many
            best single words (0: the whole vocabulary, as before; 500 is ~4x faster).
        search_shortlist: grown phrases scored on all ``search_sentences`` after a first
            scoring on ``search_word_sentences`` (0: all are, as before).
        sentence_words: the words of the dominance test's synthetic source sentences (search and
            flip rates): ``"lean"`` (the class's leaning words, as the paper's generator inputs;
            default) or ``"any"`` (the whole vocabulary, kept when the model puts them in the
            source class: less polar; tried for issue 19, off, module docstring). The
            generator always uses ``"lean"``.
        dominance_reference: the alternative a best phrase of length k is compared with avoids
            the words of every best phrase (``"best"``, default) or of that phrase only
            (``"own"``; tried for issue 19, off, module docstring).
        paper_identifier: also train the generator and run the paper's DBSCAN identifier with
            the default ``identifier="dominance"`` (its verdict goes to the evidence only; about
            35 s more per scan on one core). Always on with ``identifier="dbscan"``. Off, the
            dominance verdict is the same (it never reads the generator) and the scan takes a
            few seconds.
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
    identifier: str = "dominance"
    dominance_threshold: float = 1.27
    dominance_lengths: tuple[int, ...] = (2, 3)
    search: bool = True
    search_sentences: int = 64
    search_word_sentences: int = 16
    search_pool: int = 30
    search_beam: int = 5
    search_neighbours: int = 500
    search_shortlist: int = 64
    sentence_words: str = "lean"
    dominance_reference: str = "best"
    paper_identifier: bool = False

    def scan(self, model: Model, data: Any = None) -> Detection:
        """Scan ``model`` (a 2-class text model); ``data`` is ignored (T-Miner uses none)."""
        from . import _tminer_generator as G
        from ._tminer_version import code_hash

        start = time.perf_counter()
        ctx = self._context(model)
        net, vocab = ctx.net, ctx.vocab
        cfg = G.GeneratorConfig(
            ae_epochs=self.ae_epochs,
            joint_epochs=self.joint_epochs,
            tau=self.tau,
            **dict(self.generator),
        )
        parts, classes = [], []
        for c in (0, 1):
            try:
                parts.append(ctx.sentences(c, self.n_train // 2 if self._paper() else 2))
                classes.append(c)
            except DataError:  # the model (almost) never predicts c: no direction from c
                continue
        if not parts:
            raise DataError(
                f"{model.name} puts no synthetic sentence in either class; tminer cannot scan it"
            )
        generator, losses, n_synthetic = None, {}, 0
        if self._paper():
            x_syn = torch.cat(parts)
            y_syn = torch.tensor(classes).repeat_interleave(self.n_train // 2)
            n_synthetic = len(y_syn)
            with torch.random.fork_rng():
                torch.manual_seed(self.seed)
                generator = G.PerturbationGenerator(len(vocab), cfg)
            losses = G.train_generator(generator, net, x_syn, y_syn, cfg, ctx.gen)
        candidates: list[dict[str, Any]] = []
        sensitivity = {s: 0 for s in self._scales()} if self._paper() else {}
        eps_info = {}
        for source in classes:
            found, info = self._direction(ctx, generator, net, source)
            candidates += found
            eps_info[f"{source}->{1 - source}"] = info
            for s, n in info.pop("outliers_by_scale", {}).items():
                sensitivity[s] += n
        key = "dominant" if self.identifier == "dominance" else "dbscan_outlier"
        triggers = [c["phrase"] for c in candidates if c[key]]
        statistic = max(
            (
                d
                for info in eps_info.values()
                for d in info.get("dominance_passing_flip", {}).values()
            ),
            default=None,
        )
        evidence = {
            "dominance_max": statistic,
            "triggers": triggers,
            "identifier": self.identifier,
            "dbscan_triggers": [c["phrase"] for c in candidates if c["dbscan_outlier"]],
            "dominant_triggers": [c["phrase"] for c in candidates if c["dominant"]],
            "candidates": candidates,
            "directions": eps_info,
            "eps_sensitivity": {str(s): n for s, n in sensitivity.items()},
            "paper_identifier_ran": self._paper(),
            "code_hash": code_hash(),
            "generator_losses": losses,
            "n_synthetic": n_synthetic,
            "skipped_sources": [c for c in (0, 1) if c not in classes],
            "time_s": round(time.perf_counter() - start, 2),
        }
        if self.identifier == "dominance":  # the statistic and the threshold it is compared to
            score, threshold = (
                (statistic if statistic is not None else 0.0),
                self.dominance_threshold,
            )
        else:
            score, threshold = float(len(triggers)), 1.0
        return Detection(
            flagged=bool(triggers), score=float(score), threshold=threshold, evidence=evidence
        )

    def dominance(self, model: Model) -> dict[str, dict[int, dict[str, Any]]]:
        """The query search alone (no generator): the dominance test per direction and length.

        ``{"0->1": {k: {"phrase", "dominance", "flip_rate", "tested"}}, "1->0": ...}`` for the best
        phrase of each length k (``tested``: the test judges it); used to calibrate ``dominance_threshold`` on clean models
        (``benchmarks/tminer_calibration.py``).
        """
        ctx = self._context(model)
        ignore = [ctx.vocab.id(".")] if "." in ctx.vocab else []
        out = {}
        for source in (0, 1):
            try:
                found, rates = self._dominance_test(ctx, source, ignore)
            except DataError:  # the model (almost) never predicts this class
                continue
            out[f"{source}->{1 - source}"] = {
                k: {
                    "phrase": ctx.vocab.decode(list(p)),
                    "dominance": found.dominance[k],
                    "flip_rate": rates[p],
                    "tested": self._tested(k, rates[p]),
                }
                for k, (p, _) in sorted(found.best.items())
                if k in found.dominance
            }
        return out

    def _stream(self, source: int) -> torch.Generator:
        """The dominance test's own random stream for direction ``source`` (seeded by ``seed``)."""
        return torch.Generator().manual_seed(1_000_003 * (self.seed + 1) + 7919 * (source + 1))

    def _dominance_test(
        self, ctx: _Context, source: int, ignore: list[int]
    ) -> tuple[SearchResult, dict[tuple[int, ...], float]]:
        """The query search and the flip rates of its best phrases for source -> 1 - source.

        Runs on its own random stream (:meth:`_stream`), never the generator's, so
        :meth:`scan` and :meth:`dominance` (the calibration) compute the same statistic for the
        same ``seed``, whatever else the scan drew before.
        """
        from . import _tminer_identify as ident

        gen = self._stream(source)
        found = self._search(ctx, source, ignore, gen)
        flip_src = ctx.sentences(source, self.n_flip, generator=gen, words=self.sentence_words)
        best = [found.best[k][0] for k in sorted(found.best)]
        rates = ident.flip_rates(
            lambda x, t=1 - source: ctx.predict(x) == t,
            best,
            flip_src,
            pad_id=ctx.vocab.pad_id,
            generator=gen,
        )
        return found, dict(zip(best, rates))

    def _paper(self) -> bool:
        """Whether the scan trains the generator and runs the DBSCAN identifier."""
        return self.paper_identifier or self.identifier == "dbscan"

    def _tested(self, length: int, flip_rate: float) -> bool:
        """Whether the dominance test judges a best phrase: its length is tested and it passes the flip filter."""
        return length in self.dominance_lengths and flip_rate > self.flip_threshold

    def _context(self, model: Model) -> _Context:
        """Check that ``model`` is a binary text classifier with a hidden layer; the scan's shared state."""
        from robustbench_lite.worlds.text_nets import require_text_classifier

        if self.identifier not in ("dominance", "dbscan"):
            raise ParameterError(
                "identifier",
                f"{self.identifier!r} is not one; use 'dominance' (default) or 'dbscan' (the paper's)",
            )
        if self.sentence_words not in ("any", "lean"):
            raise ParameterError(
                "sentence_words",
                f"{self.sentence_words!r} is not a word pool; use 'lean' (default) or 'any'",
            )
        if self.dominance_reference not in ("own", "best"):
            raise ParameterError(
                "dominance_reference",
                f"{self.dominance_reference!r} is not one; use 'best' (default) or 'own'",
            )
        require_text_classifier(model.net, who="tminer")
        vocab = model.vocab
        if not isinstance(vocab, Vocabulary):
            raise DataError(
                f"tminer needs Model.vocab to be a Vocabulary; {model.name} has {type(vocab).__name__}"
            )
        if model.num_classes not in (None, 2):
            raise DataError(
                f"tminer scans binary classifiers; {model.name} has {model.num_classes} classes"
            )
        length = model.input_shape[0] if model.input_shape else self.n_words + 4
        return _Context(model, vocab, length, torch.Generator().manual_seed(self.seed), self)

    def _scales(self) -> list[float]:
        return sorted({*self.eps_sweep, self.eps_scale})

    def _direction(
        self, ctx: _Context, generator: Any, net: Any, source: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        from . import _tminer_identify as ident

        target = 1 - source
        vocab = ctx.vocab
        ignore = [vocab.id(".")] if "." in vocab else []
        phrases: list[tuple[int, ...]] = []
        if generator is not None:
            src = ctx.sentences(source, self.n_extract)
            with torch.no_grad():
                decoded = generator.decode(src, torch.full((len(src),), target), mode="greedy")
            phrases = ident.extract_candidates(
                decoded, src, vocab, top=self.max_candidates, ignore=ignore
            )
        origin = {p: "generator" for p in phrases}
        needed = self.search or self.identifier == "dominance"  # only the paper's pipeline skips it
        found, best_rates = self._dominance_test(ctx, source, ignore) if needed else (None, {})
        searched = [p for p, _ in found.phrases] if found else []
        for p in searched:
            origin.setdefault(p, "search")
        flip_src = ctx.sentences(source, self.n_flip)
        rates = dict(
            zip(
                origin,
                ident.flip_rates(
                    lambda x: ctx.predict(x) == target,
                    list(origin),
                    flip_src,
                    pad_id=vocab.pad_id,
                    generator=ctx.gen,
                ),
            )
        )
        # the DBSCAN identifier sees the searched phrases only with search=True
        pool = [p for p in origin if origin[p] == "generator" or self.search]
        kept = [(p, rates[p]) for p in pool if rates[p] > self.flip_threshold]
        info: dict[str, Any] = {"n_candidates": len(pool), "n_kept": len(kept)}
        dominant: set[tuple[int, ...]] = set()
        if found:
            info["dominance"] = {str(k): round(v, 3) for k, v in found.dominance.items()}
            info["best"] = {
                str(k): [vocab.decode(list(p)), round(g, 3)] for k, (p, g) in found.best.items()
            }
            info["alternative"] = {
                str(k): [vocab.decode(list(p)), round(g, 3)]
                for k, (p, g) in found.alternative.items()
            }
            info["best_flip_rate"] = {
                str(k): round(best_rates[p], 4) for k, (p, _) in found.best.items()
            }
            passing = {
                k: d
                for k, d in found.dominance.items()
                if self._tested(k, best_rates[found.best[k][0]])
            }
            # unrounded: the verdict's statistic, equal to what dominance() gives the calibration
            info["dominance_passing_flip"] = {str(k): d for k, d in passing.items()}
            dominant = {
                found.best[k][0] for k, d in passing.items() if d > self.dominance_threshold
            }
        outliers: set[int] = set()
        if kept and generator is not None:
            aux = self._auxiliary(ctx, target, [len(p) for p, _ in kept])
            points = [p for p, _ in kept] + aux
            ids = torch.full((len(points), ctx.length), vocab.pad_id, dtype=torch.int64)
            for i, p in enumerate(points):
                ids[i, : len(p)] = torch.tensor(p)
            with torch.no_grad():
                feats = net.hidden(ids).numpy().astype(np.float64)
            emb = ident.embed_points(feats, self.pca_variance)
            eps, min_samples, by_scale = ident.find_outliers(
                emb, len(kept), eps_scales=self._scales()
            )
            info.update(
                eps=eps,
                min_samples=min_samples,
                n_aux=len(aux),
                n_points=len(points),
                outliers_by_scale={s: len(v) for s, v in by_scale.items()},
            )
            outliers = set(by_scale[self.eps_scale])
        outlier_phrases = {kept[i][0] for i in outliers}
        reported = [p for p, _ in kept] + [p for p in dominant if p not in dict(kept)]
        out = [
            {
                "phrase": vocab.decode(list(p)),
                "direction": f"{source}->{target}",
                "flip_rate": round(rates[p], 4),
                "origin": origin[p],
                "dbscan_outlier": p in outlier_phrases,
                "dominant": p in dominant,
            }
            for p in reported
        ]
        return out, info

    def _search(
        self, ctx: _Context, source: int, ignore: list[int], gen: torch.Generator
    ) -> SearchResult:
        """The query search (``_tminer_search``) for direction source -> 1 - source."""
        from . import _tminer_search as search

        target = 1 - source
        sentences = ctx.sentences(
            source, self.search_sentences, generator=gen, words=self.sentence_words
        )
        positions = (torch.rand(len(sentences), generator=gen) * sentences.shape[1]).long()
        words = torch.tensor([w for w in ctx.vocab.words() if w not in ignore], dtype=torch.int64)
        return search.search(
            lambda ids: ctx.margin(ids, target),
            sentences,
            positions,
            words,
            n_word_sentences=self.search_word_sentences,
            pool=self.search_pool,
            beam=self.search_beam,
            neighbours=self.search_neighbours or None,
            shortlist=self.search_shortlist or None,
            reference=self.dominance_reference,
        )

    def _auxiliary(self, ctx: _Context, target: int, lengths: list[int]) -> list[tuple[int, ...]]:
        """Auxiliary phrases of target-leaning words that the classifier puts in ``target``."""
        from . import _tminer_identify as ident

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

    def __init__(
        self, model: Model, vocab: Vocabulary, length: int, gen: torch.Generator, cfg: TMiner
    ) -> None:
        from . import _tminer_synth as S

        self.model, self.vocab, self.length, self.gen, self.cfg = model, vocab, length, gen, cfg
        self.net: Any = model.net
        self.scores = S.word_scores(model, vocab, length)
        self.end_id = vocab.id(".") if "." in vocab else None

    def predict(self, ids: torch.Tensor) -> torch.Tensor:
        """Predicted class (N,) of token ids (N, T)."""
        from . import _tminer_synth as S

        return S.predict(self.model, ids, self.length, self.vocab.pad_id).argmax(dim=1)

    def margin(self, ids: torch.Tensor, target: int) -> torch.Tensor:
        """Logit margin (N,) of class ``target`` over the other class, for token ids (N, T)."""
        from . import _tminer_synth as S

        with torch.no_grad():
            logits = self.model.logits(
                S.pad_to(ids, self.length, self.vocab.pad_id), batch_size=512
            )
        return logits[:, target] - logits[:, 1 - target]

    def sentences(
        self, label: int, n: int, generator: torch.Generator | None = None, words: str = "lean"
    ) -> torch.Tensor:
        """``n`` synthetic sentences classified as ``label`` (random stream: ``generator``, else
        the scan's; ``words``: the word pool, ``_tminer_synth.class_sentences``)."""
        from . import _tminer_synth as S

        return S.class_sentences(
            self.model,
            self.vocab,
            self.scores,
            label,
            n,
            self.cfg.n_words,
            self.length,
            end_id=self.end_id,
            generator=self.gen if generator is None else generator,
            words=words,
        )
