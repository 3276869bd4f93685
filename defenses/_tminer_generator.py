"""T-Miner's perturbation generator: a label-conditioned GRU encoder-decoder.

Following ``ctrl_gen_model_defense.py`` (a Hu et al. controllable text auto-encoder), scaled to
CPU: a GRU encoder gives per-token states and z (its last states); a label code c = MLP(label)
and z feed a connector that starts a GRU decoder. The frozen suspicious classifier f is the
"discriminator". Losses (weights from every released script call: 1.0 0.5 0.03):

* reconstruction L_R = CE(teacher-forced decode of x with code c(y), x), mean over tokens;
* label flip L_C = CE(f(Gumbel-softmax decode of x with code c(1 - y)), 1 - y); the samples
  (tau = ``tau``) reach f through its ``forward_soft``, so gradients pass the discrete text;
* diversity: p = batch mean of clip(p_t(x | c(1 - y)) - onehot(x), 1e-8, 1), the probability
  mass on non-input tokens at each position, and L_div = sum_{t,v} p log p, computed per
  flipped code (each direction source -> target has its own perturbations).

Sign of the diversity term (the card leaves it open): we minimise sum p log p, i.e. *maximise*
the entropy of the perturbation mass. Measured on a CNN trojaned with "notable pulpy" at 1%
(ASR 1.0), same budget: with the released code's sign (minimise the entropy) q collapsed to
one arbitrary token ("clown") for both codes, flip loss 5.0, no candidate flipped anything;
with this sign q explores, flip loss 0.75, and the decodes put "pulpy" into 199 of 200
source sentences.

Architecture deviations (CPU budget; see :class:`PerturbationGenerator`): a bidirectional GRU
encoder and a decoder with monotonic attention (step t reads encoder state t; input and output
have the same length) that reads the input prefix in every mode instead of its own previous
samples, so every decode is one fused GRU pass. Ours substitutes tokens in place (it cannot
shift them). **Perturbation budget**: a pointer head chooses where a span of ``span`` (2)
tokens is rewritten; elsewhere the input is copied. The released decoder may rewrite anything,
and relies on L_R to keep decodes close to the input. Why (measured on the model above): the
previous design here, a per-position copy-or-generate sigmoid gate with soft Gumbel samples,
reached a low flip loss (0.22) by feeding the classifier *soft mixtures* of embeddings, which
no discrete sentence reproduces: its greedy decodes rewrote 84% of the tokens (L_R 6.2 nats),
every candidate had flip rate 0 and the trigger word never appeared. Trained by L_R the gate
closed for good (sigmoid saturation). With the pointer the flip loss sees discrete sentences
(straight-through Gumbel-softmax for the span start and for the tokens, hard one-hot forward,
soft gradients), so it can only fall by finding tokens that flip the classifier, and the
budget makes a universal trigger word the cheapest way to do it. The span start is trained by
the flip and diversity losses only (detached in L_R).

Schedule: ``ae_epochs`` of reconstruction-only pre-training, then ``joint_epochs`` with all
three losses, on synthetic sentences only (see ``_tminer_synth``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class GeneratorConfig:
    """Sizes and training schedule of the perturbation generator."""

    embed_dim: int = 64
    hidden_dim: int = 128
    code_dim: int = 16
    tau: float = 1.0
    lambda_r: float = 1.0
    lambda_c: float = 0.5
    lambda_div: float = 0.03
    ae_epochs: int = 1
    joint_epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-2
    span: int = 2


class PerturbationGenerator(nn.Module):
    """Encoder-decoder over token ids (N, T) with a 2-class label code and a span pointer.

    CPU deviations from the released texar model (see the module docstring). The decoder
    reads encoder state t at step t and has two heads: a generated token distribution q_t
    (N, T, V) and a pointer a (N, T), a softmax over the start of the perturbed span. With
    w_t = sum_{j < span} a_{t - j} (the probability that position t lies in the span),
    p_t = (1 - w_t) onehot(x_t) + w_t q_t. The span never covers the last input token (the
    synthetic sentences' "."). Every decode is one fused GRU pass.
    """

    def __init__(self, vocab_size: int, cfg: GeneratorConfig, num_classes: int = 2) -> None:
        super().__init__()
        e, h = cfg.embed_dim, cfg.hidden_dim
        self.num_classes = num_classes
        self.vocab_size = vocab_size
        self.span = cfg.span
        self.emb = nn.Embedding(vocab_size, e)
        self.start = nn.Parameter(torch.zeros(e))
        self.encoder = nn.GRU(e, h, batch_first=True, bidirectional=True)
        self.code = nn.Sequential(nn.Linear(num_classes, cfg.code_dim), nn.Tanh())
        self.connector = nn.Linear(2 * h + cfg.code_dim, h)
        self.decoder = nn.GRU(e + 2 * h + cfg.code_dim, h, batch_first=True)
        self.out = nn.Linear(3 * h + cfg.code_dim, vocab_size)
        self.pointer = nn.Linear(3 * h + cfg.code_dim, 1)

    def parts(self, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generation logits (N, T, V) and span-start logits (N, T) for x under c(label)."""
        e = self.emb(x)
        states, last = self.encoder(e)
        z = torch.cat([last[0], last[1]], dim=1)
        c = self.code(F.one_hot(label, self.num_classes).float())
        h0 = torch.tanh(self.connector(torch.cat([z, c], dim=1)))[None]
        prev = torch.cat([self.start.expand(len(x), 1, -1), e[:, :-1]], dim=1)
        c_seq = c[:, None, :].expand(-1, x.shape[1], -1)
        h, _ = self.decoder(torch.cat([prev, states, c_seq], dim=2), h0)
        feats = torch.cat([h, states, c_seq], dim=2)
        ptr = self.pointer(feats)[..., 0]
        last_start = max(x.shape[1] - 1 - self.span, 0)  # the span stops before the final token
        ptr = ptr.masked_fill(torch.arange(x.shape[1], device=x.device) > last_start, float("-inf"))
        return self.out(feats), ptr

    def _span_weights(self, a: torch.Tensor) -> torch.Tensor:
        """w (N, T, 1): probability that each position is perturbed, from span starts a (N, T)."""
        w = a.clone()
        for j in range(1, self.span):
            w = w + F.pad(a[:, :-j], (j, 0))
        return w[..., None]

    def decode(
        self,
        x: torch.Tensor,
        label: torch.Tensor,
        *,
        mode: str,
        tau: float = 1.0,
        generator: torch.Generator | None = None,
        detach_pointer: bool = False,
    ) -> torch.Tensor:
        """Decode x (N, T) under code c(label).

        mode "teacher": log-probabilities (N, T, V) of p_t; "gumbel": (N, T, V) one-hot samples
        with straight-through Gumbel-softmax gradients (``tau``) for both the span start and
        the tokens; "greedy": token ids (N, T), the argmax span filled with argmax q.
        ``detach_pointer``: no gradient into the pointer (used for the reconstruction loss).
        """
        return self.decode_parts(
            x,
            *self.parts(x, label),
            mode=mode,
            tau=tau,
            generator=generator,
            detach_pointer=detach_pointer,
        )

    def decode_parts(
        self,
        x: torch.Tensor,
        q_logits: torch.Tensor,
        ptr: torch.Tensor,
        *,
        mode: str,
        tau: float = 1.0,
        generator: torch.Generator | None = None,
        detach_pointer: bool = False,
    ) -> torch.Tensor:
        """:meth:`decode` from precomputed :meth:`parts` (one decoder pass serves several modes)."""
        copy = F.one_hot(x, self.vocab_size).to(q_logits.dtype)
        if mode == "gumbel":
            a = straight_through(gumbel_softmax(ptr, tau, generator))
            tokens = straight_through(gumbel_softmax(q_logits, tau, generator))
            w = self._span_weights(a)
            return (1 - w) * copy + w * tokens
        a = torch.softmax(ptr, dim=1)
        if mode == "greedy":
            w = self._span_weights(F.one_hot(a.argmax(dim=1), x.shape[1]).to(a.dtype))[..., 0]
            return torch.where(w > 0.5, q_logits.argmax(dim=2), x)
        w = self._span_weights(a.detach() if detach_pointer else a)
        p = (1 - w) * copy + w * torch.softmax(q_logits, dim=2)
        return torch.log(p.clamp_min(1e-12))


def gumbel_softmax(
    logits: torch.Tensor, tau: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Soft Gumbel-softmax samples over the last dimension, noise from ``generator``."""
    u = torch.rand(logits.shape, generator=generator).clamp(1e-10, 1 - 1e-10)
    return torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)


def straight_through(soft: torch.Tensor) -> torch.Tensor:
    """One-hot argmax of ``soft`` in the forward pass, gradients of ``soft`` in the backward pass."""
    hard = F.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach()


def diversity_loss(log_probs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_{t,v} p log p (minus the entropy) of the batch-mean non-input probability mass.

    ``log_probs`` (N, T, V) teacher-forced decode; p (T, V) = batch mean of
    clip(exp(log_probs) - onehot(x), 1e-8, 1). Minimising it raises the entropy, i.e. spreads
    the perturbation mass over tokens (module docstring).
    """
    probs = log_probs.exp() - F.one_hot(x, log_probs.shape[2]).to(log_probs.dtype)
    p = probs.clamp(1e-8, 1.0).mean(dim=0)
    return (p * p.log()).sum()


def train_generator(
    gen: PerturbationGenerator,
    classifier: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: GeneratorConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """Train ``gen`` on synthetic (x, y); ``classifier`` (with ``forward_soft``) stays frozen.

    Returns the final epoch's mean losses.
    """
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr)
    frozen = [p for p in classifier.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    was_training = classifier.training
    classifier.eval()
    stats: dict[str, float] = {}
    try:
        for epoch in range(cfg.ae_epochs + cfg.joint_epochs):
            joint = epoch >= cfg.ae_epochs
            sums = {"rec": 0.0, "flip": 0.0, "div": 0.0}
            order = torch.randperm(len(y), generator=generator)
            steps = 0
            gen.train()
            for start in range(0, len(y), cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                xb, yb = x[idx], y[idx]
                logits = gen.decode(xb, yb, mode="teacher", detach_pointer=True)
                loss_r = F.nll_loss(logits.flatten(0, 1), xb.flatten())
                loss = cfg.lambda_r * loss_r
                sums["rec"] += float(loss_r.detach())
                if joint:
                    flip = 1 - yb
                    q_logits, ptr = gen.parts(xb, flip)
                    soft = gen.decode_parts(
                        xb, q_logits, ptr, mode="gumbel", tau=cfg.tau, generator=generator
                    )
                    loss_c = F.cross_entropy(classifier.forward_soft(soft), flip)  # type: ignore[operator]
                    flip_logp = gen.decode_parts(xb, q_logits, ptr, mode="teacher")
                    loss_d = torch.stack(
                        [  # per flipped code: each direction has its own perturbations
                            diversity_loss(flip_logp[flip == c], xb[flip == c])
                            for c in flip.unique()
                        ]
                    ).sum()
                    loss = loss + cfg.lambda_c * loss_c + cfg.lambda_div * loss_d
                    sums["flip"] += float(loss_c.detach())
                    sums["div"] += float(loss_d.detach())
                opt.zero_grad()
                loss.backward()
                opt.step()
                steps += 1
            stats = {k: v / max(steps, 1) for k, v in sums.items()}
    finally:
        for p in frozen:
            p.requires_grad_(True)
        classifier.train(was_training)
        gen.eval()
    return stats
