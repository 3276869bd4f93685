"""T-Miner's perturbation generator: a label-conditioned GRU encoder-decoder.

Following ``ctrl_gen_model_defense.py`` (a Hu et al. controllable text auto-encoder), scaled to
CPU: a GRU encoder gives per-token states and z (its last states); a label code c = MLP(label)
and z feed a connector that starts a GRU decoder. The frozen suspicious classifier f is the
"discriminator". Losses (weights from every released script call: 1.0 0.5 0.03):

* reconstruction L_R = CE(teacher-forced decode of x with code c(y), x), mean over tokens;
* label flip L_C = CE(f(Gumbel-softmax decode of x with code c(1 - y)), 1 - y); the soft
  samples (tau = ``tau``) reach f through its ``forward_soft``, so gradients pass the discrete
  text;
* diversity: p = batch mean of clip(p_t(x | c(1 - y)) - onehot(x), 1e-8, 1), the probability
  mass on non-input tokens at each position, and L_div = sum_{t,v} p log p.

Sign of the diversity term (the card leaves it open): we minimise sum p log p, i.e. *maximise*
the entropy of the perturbation mass. With the other sign (minimising -sum p log p) we observed
the generator shut every perturbation (the non-input mass goes to 0, which minimises that
entropy) and never flip a label; with this sign it explores tokens and the flip loss falls.

Architecture deviations (CPU budget; see :class:`PerturbationGenerator`): a bidirectional GRU
encoder and a copy-or-generate (pointer-generator) decoder with monotonic attention (step t
reads encoder state t; input and output have the same length) that reads the input prefix in
every mode instead of its own previous samples, so every decode is one fused GRU pass. The
released decoder is an autoregressive attention RNN; ours substitutes tokens in place (it cannot
shift them), which is how perturbations show up in its decodes anyway. The copy gate is trained
by the flip and diversity losses only (detached in L_R): trained by L_R it closes for good
(sigmoid saturation) and no gradient opens it again. Observed failures that led here: a plain
softmax decoder with tied weights reconstructs perfectly within an epoch and its saturated
softmax passes no flip gradient.

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
    lr: float = 3e-3
    gate_bias: float = -3.0


class PerturbationGenerator(nn.Module):
    """Encoder-decoder over token ids (N, T) with a 2-class label code.

    CPU deviations from the released texar model (see the module docstring): a copy-or-generate
    (pointer-generator) decoder with monotonic attention. At step t a gate g_t chooses between
    copying the input token x_t and a generated distribution q_t:
    p_t = (1 - g_t) onehot(x_t) + g_t q_t. Reconstruction is then learnt at once (the gate
    starts nearly closed), while q_t is a separate, unsaturated softmax through which the
    label-flip gradient reaches every token. Every decode is one fused GRU pass.
    """

    def __init__(self, vocab_size: int, cfg: GeneratorConfig, num_classes: int = 2) -> None:
        super().__init__()
        e, h = cfg.embed_dim, cfg.hidden_dim
        self.num_classes = num_classes
        self.vocab_size = vocab_size
        self.emb = nn.Embedding(vocab_size, e)
        self.start = nn.Parameter(torch.zeros(e))
        self.encoder = nn.GRU(e, h, batch_first=True, bidirectional=True)
        self.code = nn.Sequential(nn.Linear(num_classes, cfg.code_dim), nn.Tanh())
        self.connector = nn.Linear(2 * h + cfg.code_dim, h)
        self.decoder = nn.GRU(e + 2 * h + cfg.code_dim, h, batch_first=True)
        self.out = nn.Linear(3 * h + cfg.code_dim, vocab_size)
        self.gate = nn.Linear(3 * h + cfg.code_dim, 1)
        nn.init.constant_(self.gate.bias, cfg.gate_bias)

    def parts(self, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generation logits (N, T, V) and copy-vs-generate gate (N, T, 1) for x under c(label)."""
        e = self.emb(x)
        states, last = self.encoder(e)
        z = torch.cat([last[0], last[1]], dim=1)
        c = self.code(F.one_hot(label, self.num_classes).float())
        h0 = torch.tanh(self.connector(torch.cat([z, c], dim=1)))[None]
        prev = torch.cat([self.start.expand(len(x), 1, -1), e[:, :-1]], dim=1)
        c_seq = c[:, None, :].expand(-1, x.shape[1], -1)
        h, _ = self.decoder(torch.cat([prev, states, c_seq], dim=2), h0)
        feats = torch.cat([h, states, c_seq], dim=2)
        return self.out(feats), torch.sigmoid(self.gate(feats))

    def decode(self, x: torch.Tensor, label: torch.Tensor, *, mode: str, tau: float = 1.0,
               generator: torch.Generator | None = None, detach_gate: bool = False) -> torch.Tensor:
        """Decode x (N, T) under code c(label).

        mode "teacher": log-probabilities (N, T, V) of p_t; "gumbel": (1 - g) onehot(x) +
        g * Gumbel-softmax(q logits, ``tau``) (N, T, V); "greedy": token ids (N, T).
        ``detach_gate``: no gradient into the gate (used for the reconstruction loss).
        """
        q_logits, gate = self.parts(x, label)
        if detach_gate:
            gate = gate.detach()
        copy = F.one_hot(x, self.vocab_size).to(q_logits.dtype)
        if mode == "gumbel":
            return (1 - gate) * copy + gate * gumbel_softmax(q_logits, tau, generator)
        p = (1 - gate) * copy + gate * torch.softmax(q_logits, dim=2)
        if mode == "teacher":
            return torch.log(p.clamp_min(1e-12))
        return p.argmax(dim=2)


def gumbel_softmax(logits: torch.Tensor, tau: float, generator: torch.Generator | None) -> torch.Tensor:
    """Soft Gumbel-softmax samples over the last dimension, noise from ``generator``."""
    u = torch.rand(logits.shape, generator=generator).clamp(1e-10, 1 - 1e-10)
    return torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)


def diversity_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum p log p (minus the entropy) of the batch-mean non-input probability mass.

    Minimising it raises the entropy, i.e. spreads perturbation mass (module docstring).
    """
    probs = torch.softmax(logits, dim=2) - F.one_hot(x, logits.shape[2]).float()
    p = probs.clamp(1e-8, 1.0).mean(dim=0)
    return (p * p.log()).sum()


def train_generator(
    gen: PerturbationGenerator, classifier: nn.Module, x: torch.Tensor, y: torch.Tensor,
    cfg: GeneratorConfig, generator: torch.Generator,
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
                logits = gen.decode(xb, yb, mode="teacher", detach_gate=True)
                loss_r = F.nll_loss(logits.flatten(0, 1), xb.flatten())
                loss = cfg.lambda_r * loss_r
                sums["rec"] += float(loss_r.detach())
                if joint:
                    flip = 1 - yb
                    soft = gen.decode(xb, flip, mode="gumbel", tau=cfg.tau, generator=generator)
                    loss_c = F.cross_entropy(classifier.forward_soft(soft), flip)
                    loss_d = diversity_loss(gen.decode(xb, flip, mode="teacher"), xb)
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
