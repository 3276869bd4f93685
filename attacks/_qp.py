"""The QuadAttack QP: project features onto the polyhedron where the ordered top-K holds.

For features ``f0`` (B, d), a linear head ``z = W v + b`` (W: (C, d), b: (C,)), ordered targets
``t`` (B, K) and a margin ``m`` in logit units, each sample's QP is

    minimize_v ||v - f0||^2   subject to   z[t_k] - z[t_{k+1}] >= m   (k = 1..K-1, ordering)
                                           z[t_K] - z[j]       >= m   (every j not in t)

i.e. C - 1 constraints ``A v >= c`` with rows ``W[upper] - W[lower]`` and
``c = m - (b[upper] - b[lower])``. All "every other class below t_K" rows are kept (constraining
only the targets lets other classes intrude into the top K). The paper's redundant all-zero row
for t_1 is dropped: every sample already has the same C - 1 rows.

Solver (written here, cross-checked against scipy's SLSQP in tests/attacks/test_quadattack.py): a
batched primal-dual interior-point method (Mehrotra predictor-corrector) on the dual

    minimize_{mu >= 0} 0.5 mu^T H mu - q^T mu,   H = A A^T,  q = c - A f0,  v = f0 + A^T mu,

whose slack ``s = H mu - q = A v - c`` is exactly the primal constraint slack. It runs in float64
on (B, C-1, C-1) systems with one batched Cholesky per iteration, then polishes each sample on
its active set (an exact equality-constrained projection, kept only if it is primal and dual
feasible). Why not a maintained solver: the paper's qpth is a differentiable solver we do not
need (the gradient of ``||f - proj(f)||^2`` is ``2 (f - proj(f))``, the Moreau-envelope
identity, so the projection can be detached), and scipy/cvxpy/osqp solve one QP at a time in
Python loops, 60 x B times per attack; the dual here is tiny (C - 1 <= a few hundred variables).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustbench_lite.core.errors import QPInfeasibleError


@dataclass(frozen=True)
class QPSolution:
    """Solutions of a batch of projection QPs.

    Attributes:
        v: (B, d) projections of ``f0`` onto ``{v : A v >= c}``, float64.
        residual: (B,) largest constraint violation ``max(0, c - A v)``, in logit units.
        iterations: interior-point iterations run (the batch stops when all samples converge).
    """

    v: torch.Tensor
    residual: torch.Tensor
    iterations: int


def topk_constraints(
    weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Constraint data ``(A, c)`` of shapes (B, C-1, d) and (B, C-1) for ``A v >= c``, float64.

    Rows 0..K-2 are the ordering constraints t_k over t_{k+1}; rows K-1..C-2 put t_K above every
    non-target class (in increasing class order).
    """
    n_classes = weight.shape[0]
    b_size, k = targets.shape
    is_target = torch.zeros(b_size, n_classes, dtype=torch.bool, device=targets.device)
    is_target.scatter_(1, targets, True)
    others = torch.arange(n_classes, device=targets.device).expand(b_size, -1)[~is_target]
    others = others.reshape(b_size, n_classes - k)
    upper = torch.cat([targets[:, :-1], targets[:, -1:].expand(-1, n_classes - k)], dim=1)
    lower = torch.cat([targets[:, 1:], others], dim=1)
    w, b = weight.detach().double(), bias.detach().double()
    a = w[upper] - w[lower]
    c = margin - (b[upper] - b[lower])
    return a, c


def _matvec(matrix: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    return (matrix @ vec[:, :, None])[..., 0]


def _cholesky_solve(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve SPD systems (B, n, n) x = (B, n); jitter where the factorisation fails.

    Samples whose system stays singular or non-finite (a diverging, infeasible QP) get x = 0.
    """
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    finite = torch.isfinite(matrix).flatten(1).all(dim=1) & torch.isfinite(rhs).all(dim=1)
    matrix = torch.where(finite[:, None, None], matrix, eye)
    rhs = torch.where(finite[:, None], rhs, torch.zeros_like(rhs))
    jitter = 0.0
    for _ in range(6):
        chol, info = torch.linalg.cholesky_ex(matrix + jitter * eye)
        if not bool((info != 0).any()):
            break
        jitter = 1e-12 if jitter == 0.0 else jitter * 100
    failed = info != 0
    chol = torch.where(failed[:, None, None], eye, chol)
    x = torch.cholesky_solve(rhs[..., None], chol)[..., 0]
    return torch.where((failed | ~finite)[:, None], torch.zeros_like(x), x)


def _max_step(x: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Largest alpha in (0, 1] per sample with x + alpha dx >= 0 (x > 0)."""
    ratio = torch.where(dx < 0, -x / dx.clamp(max=-1e-300), torch.full_like(x, float("inf")))
    return ratio.amin(dim=1).clamp(max=1.0)


def _interior_point(
    h: torch.Tensor, q: torch.Tensor, max_iter: int, tol: float
) -> tuple[torch.Tensor, int]:
    """Mehrotra predictor-corrector for min 0.5 mu'H mu - q'mu, mu >= 0; returns (mu, iterations)."""
    mu = torch.ones_like(q)
    s = torch.ones_like(q)
    scale = 1.0 + q.abs().amax(dim=1)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        r = _matvec(h, mu) - q - s
        gap = (mu * s).mean(dim=1)
        if bool(((r.abs().amax(dim=1) <= tol * scale) & (gap <= tol * scale)).all()):
            break
        kkt = h + torch.diag_embed(s / mu)
        d_mu = _cholesky_solve(kkt, -r - s)
        d_s = -s - s / mu * d_mu
        alpha = torch.minimum(_max_step(mu, d_mu), _max_step(s, d_s))[:, None]
        gap_aff = ((mu + alpha * d_mu) * (s + alpha * d_s)).mean(dim=1)
        sigma = (gap_aff / gap.clamp_min(1e-300)).clamp(0, 1).pow(3)[:, None]
        target = sigma * gap[:, None] - d_mu * d_s
        d_mu = _cholesky_solve(kkt, -r + target / mu - s)
        d_s = (target - mu * s - s * d_mu) / mu
        alpha = 0.99 * torch.minimum(_max_step(mu, d_mu), _max_step(s, d_s))[:, None]
        mu = (mu + alpha * d_mu).clamp_min(1e-300)
        s = (s + alpha * d_s).clamp_min(1e-300)
    return mu, iterations


def _polish(
    a: torch.Tensor, c: torch.Tensor, h: torch.Tensor, f0: torch.Tensor, mu: torch.Tensor
) -> torch.Tensor:
    """Exact projection onto the active set's affine subspace, where that is optimal."""
    v_old = f0 + _matvec(a.mT, mu)
    slack = _matvec(a, v_old) - c
    m = (mu > slack).double()
    h_active = h * m[:, :, None] * m[:, None, :] + torch.diag_embed(1.0 - m)
    q = (c - _matvec(a, f0)) * m
    sol, info = torch.linalg.solve_ex(h_active, q)
    v_new = f0 + _matvec(a.mT, sol * m)
    viol = (c - _matvec(a, v_new)).amax(dim=1)
    ok = (info == 0) & torch.isfinite(sol).all(dim=1) & ((sol * m).amin(dim=1) >= -1e-12)
    ok &= viol <= 1e-12 * (1.0 + c.abs().amax(dim=1))
    return torch.where(ok[:, None], v_new, v_old)


class ProjectionQP:
    """A batch of projection QPs ``min ||v - f0||^2 s.t. a v >= c`` with fixed constraints.

    The constraint data and ``H = a a^T`` are built once; :meth:`solve` takes new ``f0``.
    Shapes: ``a`` (B, m, d), ``c`` (B, m), both float64.
    """

    def __init__(
        self, a: torch.Tensor, c: torch.Tensor, *, max_iter: int = 60, tol: float = 1e-10
    ) -> None:
        self.a, self.c = a, c
        self.h = a @ a.mT
        self.max_iter, self.tol = max_iter, tol

    @classmethod
    def topk(
        cls, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor, margin: float
    ) -> ProjectionQP:
        """The ordered top-K QPs of ``targets`` (B, K) for the head ``(weight, bias)``."""
        return cls(*topk_constraints(weight, bias, targets, margin))

    def solve(self, f0: torch.Tensor) -> QPSolution:
        """Project each row of ``f0`` (B, d); returns float64 projections and residuals.

        An infeasible polyhedron shows up as a residual that stays well above zero (see
        :func:`check_feasible`).
        """
        f0 = f0.detach().double()
        q = self.c - (self.a @ f0[:, :, None])[..., 0]
        mu, iterations = _interior_point(self.h, q, self.max_iter, self.tol)
        v = _polish(self.a, self.c, self.h, f0, mu)
        residual = (self.c - (self.a @ v[:, :, None])[..., 0]).clamp_min(0).amax(dim=1)
        residual = torch.where(
            torch.isfinite(v).all(dim=1), residual, torch.full_like(residual, float("inf"))
        )
        residual = residual.nan_to_num(nan=float("inf"))
        return QPSolution(v=v, residual=residual, iterations=iterations)


def project_topk(
    f0: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor, margin: float
) -> QPSolution:
    """Project features ``f0`` (B, d) onto the ordered top-K polyhedron of ``targets`` (B, K)."""
    return ProjectionQP.topk(weight, bias, targets, margin).solve(f0)


def check_feasible(solution: QPSolution, margin: float, *, tol: float = 1e-6) -> None:
    """Raise :class:`QPInfeasibleError` when some sample's QP left constraints violated."""
    bad = (~(solution.residual <= tol * (1.0 + margin))).nonzero()[:, 0]
    if len(bad):
        worst = float(solution.residual.max())
        raise QPInfeasibleError(
            f"margin={margin:g}: the ordered top-K constraints cannot all hold for {len(bad)} "
            f"sample(s) (first {int(bad[0])}; largest violation {worst:.3g} logits) with this "
            "linear head; use a smaller margin or other targets"
        )
