"""``random_sign``: random corners of the linf ball, a baseline every real attack must beat."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import robustbench_lite as rbl
from robustbench_lite import Goal, Norm


@rbl.register_attack("random_sign")
@dataclass(frozen=True)
class RandomSign(rbl.Attack):
    """Try ``tries`` random corners ``x + eps * sign`` per sample; keep the first that breaks it.

    Args:
        tries: random corners drawn per sample.
    """

    supports = frozenset({(Norm.LINF, Goal.UNTARGETED)})
    quick_params = {"tries": 2}
    tries: int = 8

    def run(self, model, x, y, threat, *, target, generator):  # type: ignore[no-untyped-def]
        best = x.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(self.tries):
            sign = torch.randint(0, 2, x.shape, generator=generator).to(x) * 2 - 1
            candidate = x + threat.eps * sign  # the base class projects into the bounds
            broken = model.logits(candidate.clamp(*model.bounds)).argmax(1) != y
            best[broken & ~done] = candidate[broken & ~done]
            done |= broken
        return best  # success is re-checked on the real model by the base class
