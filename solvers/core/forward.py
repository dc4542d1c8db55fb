"""Forward solvers: iterative methods for ``F(z) = 0`` over a batch ``z`` of shape ``[B, N]``.

Each solver is a small immutable object with one method, ``solve(fn, z0, tracker)``, where
``fn(z) -> F(z)`` (``[B, N] -> [B, N]``) must treat batch rows independently. For a fixed point of
``f`` the residual is ``F(z) = z - f(z)``, so a "Picard" step ``z - F(z)`` is one application of
``f``. The :class:`~idplan.solvers.Tracker` does the per-sample stopping and bookkeeping.

The same objects solve the linear adjoint systems of :class:`~idplan.solvers.ImplicitAdjoint`
through :meth:`solve_linear`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .tracker import Tracker

Residual = Callable[[torch.Tensor], torch.Tensor]


class LinearOperator:
    """The transposed Jacobian ``A^T`` of a residual at a solution, as matrix-free products.

    ``t_matvec(w) = A^T w`` is one vector-Jacobian product; ``matvec(u) = A u`` one
    Jacobian-vector product (computed by the double-VJP trick). Both act on ``[B, N]`` batches.
    ``transposed``: the two are swapped, so that a solver of ``A^T w = v`` solves ``A s = v``
    (the forward-mode IFT); generic solvers need not care, structured ones (the Riccati solve) do.
    """

    def __init__(
        self,
        t_matvec: Callable[[torch.Tensor], torch.Tensor],
        matvec: Callable[[torch.Tensor], torch.Tensor],
        transposed: bool = False,
    ):
        self.t_matvec = t_matvec
        self.matvec = matvec
        self.transposed = transposed


class _Nonlinear:
    """Mixin: a nonlinear solver solves ``A^T w = v`` as the root of ``w -> A^T w - v``."""

    def solve_linear(self, op: LinearOperator, v: torch.Tensor, w0: torch.Tensor, tracker: Tracker) -> None:
        self.solve(lambda w: op.t_matvec(w) - v, w0, tracker)


@dataclass(frozen=True)
class ForwardIteration(_Nonlinear):
    """Damped Picard iteration ``z <- z - damping * F(z)`` (for a fixed point: ``(1-d) z + d f(z)``).

    Args:
        damping: step size in ``(0, 1]``; 1 is plain forward iteration.
    """

    damping: float = 1.0

    def __post_init__(self):
        if not 0.0 < self.damping <= 1.0:
            raise ValueError(f"ForwardIteration: damping must lie in (0, 1], got {self.damping}")

    def solve(self, fn: Residual, z0: torch.Tensor, tracker: Tracker) -> None:
        z, r = z0, fn(z0)
        tracker.start(z, r)
        while tracker.keep_going():
            proposal = torch.add(z, r, alpha=-self.damping)
            z, r = tracker.update(proposal, fn(proposal))


@dataclass(frozen=True)
class Anderson(_Nonlinear):
    """Safeguarded Anderson acceleration (type II) with scale-invariant Tikhonov regularisation.

    Keeps the last ``memory`` iterates ``x_i`` and residuals ``F_i`` of each sample and proposes
    ``sum_i alpha_i (x_i - beta F_i)`` with ``alpha = argmin ||sum_i alpha_i F_i||`` subject to
    ``sum_i alpha_i = 1``, solved as ``(G + lam * mean(diag G) I) y = 1``, ``alpha = y / sum(y)``
    with ``G = F F^T`` per sample: the ridge is relative to ``G``, so it neither dwarfs small
    residuals nor vanishes for large ones.

    Safeguard: a mixed step whose residual exceeds ``safeguard`` times the current residual is
    rejected; the sample restarts its history from the current iterate and takes plain (damped)
    Picard steps for ``2**strikes`` iterations before it tries mixing again. On problems where
    mixing does not help (a non-smooth ``max``), the solver thus settles into forward iteration.

    Args:
        memory: history size ``m`` (>= 2).
        beta: mixing (damping) parameter in ``(0, 1]``.
        lam: relative Tikhonov regularisation of the Gram matrix (> 0).
        safeguard: rejection threshold (>= 1), or ``None`` to accept every mixed step.
    """

    memory: int = 5
    beta: float = 1.0
    lam: float = 1e-6
    safeguard: float | None = 1.0

    def __post_init__(self):
        if self.memory < 2:
            raise ValueError(f"Anderson: memory must be >= 2, got {self.memory}")
        if not 0.0 < self.beta <= 1.0:
            raise ValueError(f"Anderson: beta must lie in (0, 1], got {self.beta}")
        if not self.lam > 0.0:
            raise ValueError(f"Anderson: lam must be positive, got {self.lam}")
        if self.safeguard is not None and not self.safeguard >= 1.0:
            raise ValueError(f"Anderson: safeguard must be >= 1 or None, got {self.safeguard}")

    def _mix(self, gs: torch.Tensor, gram: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Anderson proposal ``sum_i alpha_i g_i`` from the history of Picard points ``g_i = x_i - beta F_i``
        ``[B, k, N]`` and the residuals' Gram matrix ``gram`` ``[B, k, k]``; ``valid`` ``[B, k]``
        marks the entries in each sample's current history."""
        k = gram.shape[-1]
        pair = valid[:, :, None] & valid[:, None, :]
        eye = torch.eye(k, dtype=gram.dtype, device=gram.device)
        gram = torch.where(pair, gram, eye)  # invalid entries decouple with y_i = 0
        diag = torch.diagonal(gram, dim1=1, dim2=2)
        scale = (diag * valid).sum(1) / valid.sum(1)
        ridge = (self.lam * scale).clamp_min(torch.finfo(gram.dtype).tiny)  # all-zero residuals: a pure ridge
        system = gram + ridge[:, None, None] * eye
        ones = valid.to(gram.dtype).unsqueeze(-1)
        y, info = torch.linalg.solve_ex(system, ones)
        # a system singular in floating point (seen in float32 once residuals vanish) takes the
        # history's mean, which the safeguard rejects if it is worse
        y = torch.where((info != 0)[:, None, None] | ~torch.isfinite(y), ones, y).squeeze(-1)
        alpha = (y / y.sum(1, keepdim=True)).unsqueeze(1)  # [B, 1, k]
        return torch.bmm(alpha, gs).squeeze(1)

    def solve(self, fn: Residual, z0: torch.Tensor, tracker: Tracker) -> None:
        z, r = z0, fn(z0)
        tracker.start(z, r)
        batch, n = z.shape
        m = self.memory
        # ring buffers of the last m Picard points g = z - beta F, residuals and their Gram matrix;
        # each step writes one slot and one Gram row instead of restacking the history
        gs, rs = z.new_zeros(batch, m, n), z.new_zeros(batch, m, n)
        gram = z.new_zeros(batch, m, m)
        picard = torch.add(z, r, alpha=-self.beta)
        gs, rs, gram = self._store(gs, rs, gram, 0, picard, r)
        written = 1
        hist_len = torch.ones(batch, dtype=torch.long, device=z.device)
        wait = torch.zeros_like(hist_len)  # Picard steps left before mixing again
        strikes = torch.zeros_like(hist_len)
        any_mixing = True
        while tracker.keep_going():
            mixing = (wait == 0) & (hist_len > 1)
            if written > 1 and any_mixing:
                k = min(written, m)
                age = (written - 1 - torch.arange(k, device=z.device)) % m  # slot j holds the age[j]-th newest
                valid = age[None, :] < hist_len[:, None]
                mixed = self._mix(gs[:, :k], gram[:, :k, :k], valid)
                proposal = torch.where(mixing[:, None], mixed, picard)
            else:
                proposal = picard
            r_prop = fn(proposal)
            accept = None
            if self.safeguard is not None:
                res_prop = torch.linalg.vector_norm(r_prop.detach(), dim=1)
                accept = ~mixing | (res_prop <= self.safeguard * tracker.res)
            z, r = tracker.update(proposal, r_prop, accept)
            if accept is None:
                hist_len = (hist_len + 1).clamp_max(m)
            else:
                rejected = ~accept
                strikes = strikes + rejected.long()
                wait = torch.where(rejected, 2 ** strikes.clamp_max(10), (wait - 1).clamp_min(0))
                hist_len = torch.where(rejected, 1, (hist_len + 1).clamp_max(m))
            picard = torch.add(z, r, alpha=-self.beta)
            gs, rs, gram = self._store(gs, rs, gram, written % m, picard, r)
            written += 1
            if tracker.step % tracker.check_every == 0:
                any_mixing = bool(((wait <= 1) & tracker.active).any())

    @staticmethod
    def _store(
        gs: torch.Tensor, rs: torch.Tensor, gram: torch.Tensor, slot: int, g: torch.Tensor, r: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Write ``g, r`` into ``slot`` of the ring buffers and update the Gram matrix's row and
        column. In place, unless autograd is recording (unrolled differentiation through the solve)."""
        if torch.is_grad_enabled():
            index = torch.tensor([slot], device=g.device)
            gs = gs.index_copy(1, index, g[:, None])
            rs = rs.index_copy(1, index, r[:, None])
            row = torch.bmm(rs, r[:, :, None])  # [B, m, 1]
            gram = gram.index_copy(2, index, row).index_copy(1, index, row.transpose(1, 2))
            return gs, rs, gram
        gs[:, slot] = g
        rs[:, slot] = r
        row = torch.bmm(rs, r[:, :, None]).squeeze(-1)
        gram[:, slot, :] = row
        gram[:, :, slot] = row
        return gs, rs, gram


@dataclass(frozen=True)
class Broyden(_Nonlinear):
    """Limited-memory ("good") Broyden's method for ``F(z) = 0``.

    Maintains an inverse-Jacobian estimate ``H = I + U V`` of rank ``memory`` per sample and steps
    ``z <- z - H F(z)``; ``H`` starts at the identity, so the first step is a Picard step. There is
    no line search: a residual that blows up is reported by the tracker as diverged (or
    non-finite) and the sample is frozen at its best iterate.

    Args:
        memory: number of rank-one updates kept (oldest dropped first).
    """

    memory: int = 20

    def __post_init__(self):
        if self.memory < 1:
            raise ValueError(f"Broyden: memory must be >= 1, got {self.memory}")

    def solve(self, fn: Residual, z0: torch.Tensor, tracker: Tracker) -> None:
        z, r = z0, fn(z0)
        tracker.start(z, r)
        batch, n = z.shape
        u_mat = z.new_zeros(batch, n, 0)  # H = I + U V
        v_mat = z.new_zeros(batch, 0, n)

        def apply_h(x: torch.Tensor) -> torch.Tensor:
            return x + torch.bmm(u_mat, torch.bmm(v_mat, x[:, :, None])).squeeze(-1)

        def apply_ht(x: torch.Tensor) -> torch.Tensor:
            return x + torch.bmm(v_mat.transpose(1, 2), torch.bmm(u_mat.transpose(1, 2), x[:, :, None])).squeeze(-1)

        while tracker.keep_going():
            proposal = z - apply_h(r)
            z_new, r_new = tracker.update(proposal, fn(proposal))
            dz, dr = z_new - z, r_new - r
            h_dr = apply_h(dr)
            denom = (dz * h_dr).sum(1, keepdim=True)
            size = torch.linalg.vector_norm(dz, dim=1, keepdim=True) * torch.linalg.vector_norm(
                h_dr, dim=1, keepdim=True
            )
            ok = denom.abs() > 1e-12 * size.clamp_min(torch.finfo(z.dtype).tiny)
            u = torch.where(ok, (dz - h_dr) / torch.where(ok, denom, 1.0), 0.0)
            v = torch.where(ok, apply_ht(dz), 0.0)
            u_mat = torch.cat([u_mat, u[:, :, None]], dim=2)[:, :, -self.memory :]
            v_mat = torch.cat([v_mat, v[:, None, :]], dim=1)[:, -self.memory :, :]
            z, r = z_new, r_new


def dense_jacobian(r: torch.Tensor, z: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """``[B, N, N]`` per-sample Jacobian ``dr/dz`` of ``r = F(z)`` (``[B, N]``, linked by a graph),
    from ``N`` vector-Jacobian products (batch elements must not interact). Rows that do not depend
    on ``z`` at all are zero."""
    ones = torch.ones(r.shape[0], dtype=r.dtype, device=r.device)
    rows = []
    for i in range(r.shape[1]):
        row = None
        if r.requires_grad:
            (row,) = torch.autograd.grad(
                r[:, i], z, ones, retain_graph=True, create_graph=create_graph, allow_unused=True
            )
        rows.append(torch.zeros_like(z) if row is None else row)
    return torch.stack(rows, dim=1)


@dataclass(frozen=True)
class Newton(_Nonlinear):
    """Newton's method ``z <- z - damping * J(z)^{-1} F(z)`` with a dense per-sample Jacobian.

    The Jacobian ``[B, N, N]`` is built from ``N`` vector-Jacobian products, so this suits small
    ``N`` (roots of scalar equations, small argmins); larger problems should use :class:`Broyden`.
    A sample whose Jacobian is singular takes a Picard step instead.

    Args:
        damping: step size in ``(0, 1]``.
        max_dim: largest ``N`` accepted (a clear error beyond it, rather than a slow solve).
    """

    damping: float = 1.0
    max_dim: int = 256

    def __post_init__(self):
        if not 0.0 < self.damping <= 1.0:
            raise ValueError(f"Newton: damping must lie in (0, 1], got {self.damping}")

    def _eval(self, fn: Residual, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Residual and Newton step at ``z``."""
        differentiable = torch.is_grad_enabled()
        with torch.enable_grad():
            zz = z if z.requires_grad else z.detach().requires_grad_()
            r = fn(zz)
            jac = dense_jacobian(r, zz, create_graph=differentiable)
        step, info = torch.linalg.solve_ex(jac, r.unsqueeze(-1))
        step = torch.where((info == 0)[:, None], step.squeeze(-1), r)
        if not differentiable:
            r, step = r.detach(), step.detach()
        return zz if differentiable else z, r, step

    def solve(self, fn: Residual, z0: torch.Tensor, tracker: Tracker) -> None:
        if z0.shape[1] > self.max_dim:
            raise ValueError(
                f"Newton builds a dense {z0.shape[1]}x{z0.shape[1]} Jacobian per sample, above "
                f"max_dim={self.max_dim}; use Broyden() or Anderson() for large problems"
            )
        z, r, step = self._eval(fn, z0)
        tracker.start(z, r)
        while tracker.keep_going():
            proposal = z - self.damping * step
            z_new, r_new, step_new = self._eval(fn, proposal)
            z, r = tracker.update(z_new, r_new)
            step = torch.where(tracker.active[:, None], step_new, step)


@dataclass(frozen=True)
class SaddleFreeNewton:
    """Minimise ``score`` (``[B, N] -> [B]``) by saddle-free Newton steps (Dauphin et al. 2014): the
    Newton step with the Hessian's eigenvalues replaced by their absolute values (floored at
    ``1e-8`` of the largest), then backtracking on the score over ``halvings`` step sizes.

    Unlike :class:`Newton` on the gradient, which walks to any stationary point, every accepted step
    lowers the score, so it refines an answer of a global forward (random shooting) towards a
    minimum. It is what :func:`~idplan.solvers.argmin` uses for ``refine``. ``fn`` (the gradient,
    the argmin's residual) is what the tracker measures. A sample whose gradient or Hessian is not
    finite takes no step (and stays unconverged). Dense Hessians: small ``N`` (``<= max_dim``).
    """

    score: Callable[[torch.Tensor], torch.Tensor]
    halvings: int = 8
    max_dim: int = 256

    def solve(self, fn: Residual, z0: torch.Tensor, tracker: Tracker) -> None:
        if z0.shape[1] > self.max_dim:
            raise ValueError(
                f"SaddleFreeNewton: a dense {z0.shape[1]}x{z0.shape[1]} Hessian exceeds max_dim={self.max_dim}"
            )
        steps = 0.5 ** torch.arange(self.halvings, dtype=z0.dtype, device=z0.device)
        z = z0.detach()
        with torch.no_grad():
            tracker.start(z, fn(z))
        while tracker.keep_going():
            with torch.enable_grad():
                zz = z.detach().requires_grad_()
                g = fn(zz)
                H = dense_jacobian(g, zz).detach()
            g = g.detach()
            finite = torch.isfinite(g).all(-1) & torch.isfinite(H).all((-1, -2))
            g = torch.where(finite[:, None], g, 0.0)
            H = torch.where(finite[:, None, None], H, torch.eye(H.shape[-1], dtype=H.dtype, device=H.device))
            evals, evecs = torch.linalg.eigh(0.5 * (H + H.transpose(-1, -2)))
            scale = evals.abs().amax(-1, keepdim=True)
            evals = evals.abs().clamp_min(1e-8 * scale + torch.finfo(z.dtype).tiny)
            direction = -(evecs @ ((evecs.transpose(-1, -2) @ g.unsqueeze(-1)) / evals.unsqueeze(-1))).squeeze(-1)
            with torch.no_grad():
                current = self.score(z)
                rounding = 10 * torch.finfo(z.dtype).eps * current.abs()  # rounding-level ties pass
                z_new = z
                taken = torch.zeros_like(finite)
                for step in steps:  # the largest step that does not raise the score
                    trial = z + step * direction
                    better = ~taken & (self.score(trial) <= current + rounding)
                    z_new = torch.where(better[:, None], trial, z_new)
                    taken = taken | better
                z, _ = tracker.update(z_new, fn(z_new))
