"""z3 encoders of the two primitives, and an incremental leaf solver for one :class:`Case`.

The network is asserted once (linear real arithmetic, coefficients as the exact rationals of
the float64 weights): ``Affine`` -> linear equalities, ``ReLU`` -> ``a >= 0, a >= z`` plus the
exact case split ``(z >= 0 and a = z) or (z <= 0 and a = 0)`` for neurons that the root bounds
leave unstable (stable ones are fixed). A branch-and-bound leaf is then a ``push``: its box on
the inputs, the phase of every neuron that its bounds make stable, the triangle cut
``a <= u (z - l) / (u - l)`` of the rest, and the open output disjuncts; ``check`` runs with a
per-query timeout; ``pop``. z3 is imported inside functions only.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from .layers import Network
from .properties import Case


def q(value: float) -> Any:
    """The exact rational of a float as a z3 real constant."""
    import z3

    f = Fraction(float(value))
    return (
        z3.RealVal(f"{f.numerator}/{f.denominator}")
        if f.denominator != 1
        else z3.RealVal(f.numerator)
    )


def encode_affine(W: np.ndarray, b: np.ndarray, inputs: list[Any]) -> list[Any]:
    """z3 expressions ``W x + b`` (exact rationals); zero coefficients and inputs are skipped."""
    import z3

    out = []
    live = [
        (i, v)
        for i, v in enumerate(inputs)
        if not (z3.is_rational_value(v) and v.as_fraction() == 0)
    ]
    for j in range(W.shape[0]):
        terms = [q(W[j, i]) * v for i, v in live if W[j, i] != 0.0]
        out.append(z3.Sum(terms) + q(b[j]) if terms else q(b[j]))
    return out


def encode_relu(solver: Any, z: list[Any], lw: np.ndarray, u: np.ndarray, name: str) -> list[Any]:
    """Outputs of ReLU on pre-activations ``z`` with bounds ``l, u``; asserts the exact encoding."""
    import z3

    out = []
    for j, zj in enumerate(z):
        if u[j] <= 0:
            out.append(z3.RealVal(0))
            continue
        a = z3.Real(f"{name}_{j}")
        if lw[j] >= 0:
            solver.add(a == zj)
        else:
            solver.add(a >= 0, a >= zj, z3.Or(z3.And(zj >= 0, a == zj), z3.And(zj <= 0, a == 0)))
        out.append(a)
    return out


class LeafSolver:
    """One incremental z3 solver for ``case``; :meth:`check` decides a leaf (box + phases)."""

    def __init__(
        self, net: Network, case: Case, root_pre: list[tuple[np.ndarray, np.ndarray]]
    ) -> None:
        import z3

        self.net, self.case = net, case
        self.solver = z3.SolverFor("QF_LRA")
        self.x = [z3.Real(f"X_{i}") for i in range(net.n_inputs)]
        for i, v in enumerate(self.x):
            self.solver.add(v >= q(case.lo[i]), v <= q(case.hi[i]))
        self.z: list[list[Any]] = []
        self.a: list[list[Any]] = []
        acts: list[Any] = self.x
        for k in range(net.n_relu_layers):
            z = self._named(encode_affine(net.weights[k], net.biases[k], acts), f"z{k}")
            lw, u = root_pre[k]
            acts = encode_relu(self.solver, z, lw, u, f"a{k}")
            self.z.append(z)
            self.a.append(acts)
        self.y = encode_affine(net.weights[-1], net.biases[-1], acts)

    def _named(self, exprs: list[Any], prefix: str) -> list[Any]:
        import z3

        out = []
        for j, e in enumerate(exprs):
            v = z3.Real(f"{prefix}_{j}")
            self.solver.add(v == e)
            out.append(v)
        return out

    def check(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        pre: list[tuple[np.ndarray, np.ndarray]],
        open_disjuncts: np.ndarray,
        timeout_s: float,
    ) -> tuple[str, np.ndarray | None]:
        """``("unsat"|"sat"|"unknown", x)`` for the leaf box ``[lo, hi]`` with bounds ``pre``.

        ``x`` (n_in,) float64 is z3's model for ``sat`` (still to be re-checked in float32).
        """
        import z3

        s = self.solver
        s.push()
        try:
            for i, v in enumerate(self.x):
                s.add(v >= q(lo[i]), v <= q(hi[i]))
            for k, (lw, u) in enumerate(pre):
                self._leaf_layer(k, lw, u)
            s.add(
                z3.Or(
                    [
                        self._disjunct(C, d)
                        for k, (C, d) in enumerate(self.case.disjuncts)
                        if open_disjuncts[k]
                    ]
                )
            )
            s.set("timeout", max(1, int(timeout_s * 1000)))
            res = s.check()
            if res == z3.unsat:
                return "unsat", None
            if res == z3.sat:
                m = s.model()
                x = np.array([_to_float(m.eval(v, model_completion=True)) for v in self.x])
                return "sat", x
            return "unknown", None
        finally:
            s.pop()

    def _leaf_layer(self, k: int, lw: np.ndarray, u: np.ndarray) -> None:
        import z3

        s = self.solver
        for j, zj in enumerate(self.z[k]):
            aj = self.a[k][j]
            if z3.is_rational_value(aj):
                continue  # inactive at the root already
            if lw[j] >= 0:
                s.add(zj >= 0)
            elif u[j] <= 0:
                s.add(zj <= 0)
            else:
                slope = u[j] / (u[j] - lw[j])
                if np.isfinite(slope):
                    # triangle cut, loosened by 1e-9 relative so float rounding of the slope cannot cut real points
                    s.add(
                        aj
                        <= q(slope) * (zj - q(lw[j])) + q(1e-9 * (abs(u[j]) + abs(lw[j])) + 1e-12)
                    )

    def _disjunct(self, C: np.ndarray, d: np.ndarray) -> Any:
        import z3

        rows = encode_affine(C, -d, self.y)
        return z3.And([r <= 0 for r in rows])


def _to_float(v: Any) -> float:
    import z3

    if z3.is_rational_value(v):
        return float(v.as_fraction())
    if z3.is_algebraic_value(v):
        return float(v.approx(20).as_fraction())
    return 0.0
