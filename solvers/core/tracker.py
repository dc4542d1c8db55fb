"""The per-sample bookkeeping shared by every iterative solver.

A solver's loop proposes a new iterate and its residual; :class:`Tracker` freezes the samples that
have stopped, detects convergence, divergence and non-finite values per sample, keeps the
lowest-residual iterate and the residual history, and decides when the batch is done. It touches
the host (``bool(tensor)``) only every ``check_every`` steps, so a loop on a GPU runs without a
host synchronisation per iteration.
"""

from __future__ import annotations

import torch

from .solution import SolverStats


class Tracker:
    """Track a batched iteration ``z_{k+1} = step(z_k)`` for the residual ``F(z) = 0``.

    Args:
        max_iter: cap on the number of steps.
        atol: absolute tolerance: a sample has converged when ``||F(z)|| <= atol + rtol * ||scale||``
            where ``scale`` is ``z`` itself, or the fixed ``scale`` tensor passed here (a linear
            solve's right-hand side).
        rtol: relative tolerance (see ``atol``).
        divergence_factor: a sample whose residual exceeds this times its starting residual is
            declared diverged.
        check_every: how often (in steps) the loop may synchronise with the host to stop early.
        scale: optional ``[B]`` tensor of fixed norms for the relative test.
    """

    def __init__(
        self,
        *,
        max_iter: int,
        atol: float,
        rtol: float,
        divergence_factor: float,
        check_every: int,
        scale: torch.Tensor | None = None,
    ):
        self.max_iter = max_iter
        self.atol = atol
        self.rtol = rtol
        self.divergence_factor = divergence_factor
        self.check_every = max(1, check_every)
        self.fixed_scale = scale
        self.step = 0

    def _scale(self, z: torch.Tensor) -> torch.Tensor:
        if self.fixed_scale is not None:
            return self.fixed_scale
        return torch.linalg.vector_norm(z.detach(), dim=1)

    def start(self, z: torch.Tensor, r: torch.Tensor) -> None:
        """Record the starting iterate ``z`` ``[B, N]`` and its residual ``r`` ``[B, N]``."""
        res = torch.linalg.vector_norm(r.detach(), dim=1)
        self.res0 = res
        self.res = res
        self.scale = self._scale(z)
        finite = torch.isfinite(res)
        self.nonfinite = ~finite
        self.diverged = torch.zeros_like(finite)
        self.converged = finite & (res <= self.atol + self.rtol * self.scale)
        self.active = finite & ~self.converged
        self.iterations = torch.zeros(res.shape, dtype=torch.long, device=res.device)
        self.failed_at = torch.where(self.nonfinite, 0, -1)
        self.best_z, self.best_r, self.best_res = z, r, torch.where(finite, res, torch.inf)
        self.at_best = torch.ones_like(finite)
        self.history = [res]
        self.z, self.r = z, r

    def keep_going(self) -> bool:
        """Whether another step is needed (host sync only every ``check_every`` steps)."""
        if self.step >= self.max_iter:
            return False
        if self.step % self.check_every == 0:
            return bool(self.active.any())
        return True

    def update(
        self, z_new: torch.Tensor, r_new: torch.Tensor, accept: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Take a proposed iterate and its residual; returns the current ``(z, r)``.

        Samples that have stopped keep their value; where ``accept`` (``[B]`` bool) is False the
        proposal is rejected (the step is still counted). Non-finite or diverged samples are frozen
        at their lowest-residual iterate.

        When the host may be consulted every step (``check_every == 1``), the common case of every
        sample taking its step and improving skips all per-sample masking of ``[B, N]`` tensors.
        """
        self.step += 1
        sync = self.check_every == 1
        take = self.active if accept is None else self.active & accept
        self.iterations = self.iterations + self.active.long()
        res_new = torch.linalg.vector_norm(r_new.detach(), dim=1)

        bad_value = take & ~torch.isfinite(res_new)
        blown_up = take & ~bad_value & (res_new > self.divergence_factor * self.res0)
        failed = bad_value | blown_up
        self.nonfinite = self.nonfinite | bad_value
        self.diverged = self.diverged | blown_up
        self.failed_at = torch.where(failed, self.step, self.failed_at)

        moved = take & ~failed
        if sync and bool(moved.all()):
            z, r, res = z_new, r_new, res_new
        else:
            z = torch.where(moved[:, None], z_new, self.z)
            r = torch.where(moved[:, None], r_new, self.r)
            res = torch.where(moved, res_new, self.res)

        improved = moved & (res_new < self.best_res)
        at_best = improved | (~moved & self.at_best)  # whether z is each sample's best iterate
        if sync and bool(at_best.all()):
            self.best_z, self.best_r, self.best_res = z, r, res
        else:
            self.best_z = torch.where(improved[:, None], z, self.best_z)
            self.best_r = torch.where(improved[:, None], r, self.best_r)
            self.best_res = torch.where(improved, res, self.best_res)

        if not sync or bool(failed.any()):
            # failed samples fall back to their best iterate so no NaN leaks into later steps
            z = torch.where(failed[:, None], self.best_z, z)
            r = torch.where(failed[:, None], self.best_r, r)
            res = torch.where(failed, self.best_res, res)
            at_best = at_best | failed
        self.at_best = at_best

        if self.fixed_scale is None:
            scale = self._scale(z)
            self.scale = scale if sync and bool(take.all()) else torch.where(take, scale, self.scale)
        self.converged = self.converged | (moved & (res <= self.atol + self.rtol * self.scale))
        self.active = self.active & ~self.converged & ~failed
        self.res = res
        self.history.append(res)
        self.z, self.r = z, r
        return z, r

    def result(self, return_best: bool) -> tuple[torch.Tensor, SolverStats]:
        """The final iterate ``[B, N]`` (or the lowest-residual one) and its :class:`SolverStats`."""
        z, res = self.z, self.res
        if return_best:
            use_best = self.best_res < res
            z = torch.where(use_best[:, None], self.best_z, z)
            res = torch.where(use_best, self.best_res, res)
        scale = self._scale(z) if self.fixed_scale is None else self.fixed_scale
        tiny = torch.finfo(res.dtype).tiny
        stats = SolverStats(
            iterations=self.iterations,
            abs_residual=res,
            rel_residual=res / scale.clamp_min(tiny),
            converged=self.converged,
            diverged=self.diverged,
            nonfinite=self.nonfinite,
            history=torch.stack(self.history),
            steps=self.step,
            failed_at=self.failed_at,
        )
        return z, stats


def default_check_every(device: torch.device) -> int:
    """Host synchronisations are free on the CPU; on an accelerator check every 8 steps."""
    return 1 if device.type == "cpu" else 8
