"""Imitation from observations with a differentiable MPC layer on the cart-pole (DIL section 3.2, Table 2).

True system: ``idplan/CartPole-v0``'s dynamics with the DIL preset (0.6 m pole, 0.5 kg cart and pole,
dt 0.1), controls bounded by 20 N. The task (default, the paper's): swing the pole up from hanging,
``x_0 ~ N(0, 0.04 I)`` around the hanging pole, scored by the saturating cost of the pole tip's
distance to upright (``cartpole.tip_cost``, PILCO's cost in the setting of Gal et al. 2016 that the
paper replicates; at most 1 per step, 40 per episode). ``--start upright`` is a balancing variant
scored by the env's quadratic cost. Expert: random-shooting MPC on the true model and the task's cost
(1000 particles, horizon 10, polished by 10 saddle-free Newton steps, warm-started by its last plan
shifted); 100 trajectories of 40 steps. The learners see the expert's states only:

- ``MPC-IFT``: a learned dynamics MLP, trained on random transitions of the true system (from the
  expert's states and from them plus ``N(0, 0.5 I)`` noise, controls uniform), and a learned cost,
  the squared distance of ``(x, cos theta, sin theta)`` to a learnable target (DIL Fig. 8b),
  trained as in the paper's Algorithm 2 (the target starting at the expert's mean final state;
  with ``--learn-weights`` the weights are learned too): solve the MPC from an expert state, step
  the learned model with its first control, and match the expert's next state; gradients through
  the argmin by CG on Hessian-vector products (``ShootingMPC``). The horizon grows from 1 to 10 during training; each
  training state's last plan warm-starts its next solve.
- ``BC``: behavioural cloning from observations, as the paper's: an MLP policy whose control, stepped
  through the learned dynamics, should reach the expert's next state. ``BC on u`` regresses the
  expert's controls instead (privileged; a reference).
- ``model+true``: the learned dynamics with the true cost (a diagnostic: the model's share of the error).

Each is evaluated on 50 fresh episodes of 40 steps from the low (0.04) and a high (0.16) initial
variance, by the average summed task cost (paper Table 2, 50 initial states and 10 runs: expert 9.2
< MPC-IFT 13.7 < BC 14.6 at low variance, 9.3 < 14.7 < 18.4 at high; the ordering is what should
reproduce). ``--runs R --workers W`` repeats the whole run with seeds ``seed .. seed + R - 1`` in
``W`` spawned processes and reports the mean and standard error over runs.

    python examples/mpc_ift_cartpole.py                          # swing-up, one run (13 min)
    python examples/mpc_ift_cartpole.py --runs 10 --workers 2    # the paper's 10 runs
    python examples/mpc_ift_cartpole.py --learn-weights
    python examples/mpc_ift_cartpole.py --start upright          # balancing
    python examples/mpc_ift_cartpole.py --cost-steps 20 --episodes 5 --trajectories 10   # a quick look
"""

from __future__ import annotations

import argparse
import functools
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from torch import nn

from idplan.agents.cli import device
from idplan.agents.control import MLPDynamics, ShootingMPC, TargetCost, shift_plan
from idplan.envs import cartpole
from idplan.envs.atomic import atomic_path
from idplan.envs.records import add_record_argument, emit_result
from idplan.solvers import ConvergenceError

PARAMS = cartpole.CartPoleParams.dil_preset()
BOUND = PARAMS.max_force
WEIGHTS = torch.tensor(
    [
        PARAMS.position_weight,
        PARAMS.velocity_weight,
        PARAMS.angle_weight,
        PARAMS.angle_weight,
        PARAMS.angular_velocity_weight,
    ],
    dtype=torch.float64,
)
GOAL = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
HORIZON = 10
# the learned cost (DIL Fig. 8b): the squared distance of (x, cos theta, sin theta) to a learnable target
COST_MASK = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64)


class TrueDynamics(nn.Module):
    def forward(self, x, u):
        return cartpole.observation_dynamics(x, u, PARAMS)


def initial_states(count: int, variance: float, generator: torch.Generator, hanging: bool = True) -> torch.Tensor:
    """Observations ``[count, 5]`` of states ``N(0, variance I)`` around hanging (swing-up) or upright,
    on the generator's device."""
    state = torch.randn(count, 4, generator=generator, dtype=torch.float64, device=generator.device)
    state = state * math.sqrt(variance)
    if hanging:
        state[:, 2] += math.pi
    return cartpole.observe(state)


def perturbed(observations: torch.Tensor, variance: float, generator: torch.Generator) -> torch.Tensor:
    """The states of ``observations [N, 5]`` plus ``N(0, variance I)`` noise, observed again."""
    state = cartpole.state_from_observation(observations)
    noise = torch.randn(state.shape, generator=generator, dtype=state.dtype, device=state.device) * math.sqrt(variance)
    return cartpole.observe(state + noise)


def balancing_cost(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The env's quadratic cost, ``[B]``."""
    return cartpole.cost(x, u, PARAMS)


def swing_up_cost(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The saturating tip cost (PILCO's, as in Gal et al. 2016), ``[B]``, in ``[0, 1)``."""
    return cartpole.tip_cost(x, PARAMS)


def rollout(policy, x0: torch.Tensor, stage_cost, steps: int = 40) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """States ``[steps + 1, B, 5]``, controls ``[steps, B, 1]`` and summed ``stage_cost(x, u)`` ``[B]``."""
    xs, us, total = [x0], [], torch.zeros(x0.shape[0], dtype=torch.float64, device=x0.device)
    for _ in range(steps):
        u = policy(xs[-1]).clamp(-BOUND, BOUND)
        total = total + stage_cost(xs[-1], u)
        us.append(u)
        xs.append(cartpole.observation_dynamics(xs[-1], u, PARAMS))
    return torch.stack(xs), torch.stack(us), total


def mpc_policy(mpc: ShootingMPC):
    """Receding-horizon control: the first control of each plan, the last plan (shifted one step)
    warm-starting the next solve among the random candidates."""
    last = {"plan": None}

    def act(x):
        with torch.no_grad():
            plan = last["plan"]
            last["plan"] = mpc(x, None if plan is None or plan.shape[1] != len(x) else shift_plan(plan))
        return last["plan"][0]

    return act


def train_dynamics(states: torch.Tensor, steps: int, generator: torch.Generator) -> MLPDynamics:
    """Algorithm 2's train_f: regress the true next state on random transitions, from ``states`` [N, 5]
    with controls uniform in the bound."""
    model = MLPDynamics(5, 1).double().to(states.device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        x = states[torch.randint(0, len(states), (256,), generator=generator, device=states.device)]
        u = (torch.rand(256, 1, generator=generator, dtype=torch.float64, device=states.device) * 2 - 1) * BOUND
        loss = (model(x, u) - cartpole.observation_dynamics(x, u, PARAMS)).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


def train_cost(
    model: MLPDynamics,
    xs: torch.Tensor,
    steps: int,
    generator: torch.Generator,
    learn_weights: bool = False,
    particles: int = 1000,
) -> tuple[ShootingMPC, list, float]:
    """Algorithm 2's train_c: the first MPC control, stepped by the learned model, should reach the
    expert's next state. Returns the layer, the loss history, the fraction of stationary solves
    (minima: the argmin's curvature check) and the steps skipped because an adjoint missed its
    tolerance (those gradients would not be exact)."""
    # the target starts at the mean observed expert state (from observations only); from a random
    # start the one-step matching loss led it to a hanging target (cos theta -1.1) in our runs
    cost = TargetCost(COST_MASK.to(xs.device), xs[-1].mean(0), learn_weights=learn_weights)
    mpc = ShootingMPC(
        model,
        cost,
        1,
        horizon=1,
        particles=particles,
        bound=BOUND,
        control_weight=PARAMS.force_weight,
        refine=10,
        rtol=1e-5,
        generator=generator,
    )
    optimiser = torch.optim.Adam(cost.parameters(), lr=1e-2)
    pairs_from, pairs_to = xs[:-1].reshape(-1, 5), xs[1:].reshape(-1, 5)
    # each pair's last solution warm-starts its next solve: the cost moves little between steps, so
    # the solves stay near their optimum (the IFT needs stationary solutions)
    plans = torch.zeros(HORIZON, len(pairs_from), 1, dtype=torch.float64, device=xs.device)  # time first, as the plans
    history, stationary, adjoint_misses = [], [], 0
    for step in range(steps):
        mpc.horizon = min(HORIZON, 1 + step * HORIZON // max(steps // 2, 1))  # grows to 10 over the first half
        index = torch.randint(0, len(pairs_from), (32,), generator=generator, device=xs.device)
        plan = mpc(pairs_from[index], plans[: mpc.horizon, index])
        plans[: mpc.horizon, index] = plan.detach()
        u = plan[0]
        loss = (model(pairs_from[index], u) - pairs_to[index]).pow(2).sum(-1).mean()
        optimiser.zero_grad()
        try:
            loss.backward()
        except ConvergenceError:  # an adjoint that missed its tolerance: no exact gradient, no step
            adjoint_misses += 1
        else:
            optimiser.step()
        history.append(float(loss.detach()))
        stationary.append(float(mpc.last.stats.converged.float().mean()))
    mpc.horizon = HORIZON
    return mpc, history, sum(stationary) / len(stationary), adjoint_misses


def train_bc(
    xs: torch.Tensor, us: torch.Tensor | None, steps: int, generator: torch.Generator, model: MLPDynamics | None = None
):
    """Behavioural cloning: an MLP policy. With ``model`` (the paper's BC, from observations only) its
    control is stepped through the learned dynamics and the next state matched to the expert's;
    without, it regresses the expert's controls ``us`` (privileged: the paper's learners never see them)."""
    policy = nn.Sequential(nn.Linear(5, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 1))
    policy = policy.double().to(xs.device)
    optimiser = torch.optim.Adam(policy.parameters(), lr=1e-3)
    X, X_next = xs[:-1].reshape(-1, 5), xs[1:].reshape(-1, 5)
    U = None if us is None else us.reshape(-1, 1)
    for _ in range(steps):
        index = torch.randint(0, len(X), (256,), generator=generator, device=xs.device)
        u = BOUND * torch.tanh(policy(X[index]))
        if model is not None:
            loss = (model(X[index], u) - X_next[index]).pow(2).sum(-1).mean()
        else:
            loss = (u - U[index]).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return lambda x: BOUND * torch.tanh(policy(x)).detach()


POLICIES = ("expert", "MPC-IFT", "BC", "BC on u", "model+true")
VARIANCES = ("0.04", "0.16")


def run(args: argparse.Namespace, seed: int) -> tuple[dict, dict]:
    """One run (data, learning, evaluation) with ``seed``: ``{policy: {variance: {"mean", "standard_error"}}}``
    of the summed task cost over ``args.episodes`` test episodes, and the states ``[41, B, 5]`` of the
    expert data and of each policy's test episodes at the high variance (for :func:`plot_phase`; on the CPU)."""
    torch.set_num_threads(args.threads)
    say = functools.partial(print, *([f"[run {seed}]"] if args.runs > 1 else []), flush=True)
    generator = torch.Generator(device=args.device).manual_seed(seed)
    torch.manual_seed(seed)
    start = time.perf_counter()
    hanging = args.start == "hanging"
    # the task: the saturating tip cost for the swing-up (the paper's setting), the env's quadratic
    # cost for balancing; the expert plans on it, and every policy is scored by it
    stage_cost = swing_up_cost if hanging else balancing_cost
    planning_cost = (
        functools.partial(cartpole.tip_cost, params=PARAMS)
        if hanging
        else TargetCost(WEIGHTS.to(args.device), GOAL.to(args.device))
    )
    expert = ShootingMPC(
        TrueDynamics(),
        planning_cost,
        1,
        horizon=HORIZON,
        particles=args.particles,
        bound=BOUND,
        control_weight=PARAMS.force_weight,
        refine=args.expert_refine,
        generator=generator,
    )
    xs, us, expert_cost = rollout(
        mpc_policy(expert), initial_states(args.trajectories, 0.04, generator, hanging), stage_cost, args.episode_steps
    )
    say(
        f"expert data: {args.trajectories} x {args.episode_steps} steps, mean cost {float(expert_cost.mean()):.2f} ({time.perf_counter() - start:.0f} s)"
    )
    random_states = perturbed(xs[:-1].reshape(-1, 5), args.model_variance, generator)
    model = train_dynamics(torch.cat([xs.reshape(-1, 5), random_states]), args.dynamics_steps, generator)
    start_target = [float(v) for v in xs[-1].mean(0)[[0, 2, 3]]]
    mpc, history, stationary, misses = train_cost(
        model, xs, args.cost_steps, generator, args.learn_weights, args.particles
    )
    say(
        f"train_c: MPC solutions stationary minima (rtol 1e-5) in {100 * stationary:.0f}% of samples; "
        f"{misses} of {args.cost_steps} steps skipped (an adjoint missed its tolerance); "
        f"target (x, cos, sin) {[round(v, 3) for v in start_target]} -> "
        f"{[round(float(mpc.cost.target.detach()[i]), 3) for i in (0, 2, 3)]} (true [0, 1, 0]), "
        f"weights {[round(float(mpc.cost.weights.detach()[i]), 3) for i in (0, 2, 3)]}; "
        f"loss {history[0]:.4f} -> {sum(history[-10:]) / 10:.4f} ({time.perf_counter() - start:.0f} s)"
    )
    model.requires_grad_(False)  # BC from observations trains its policy through the frozen model
    bc = train_bc(xs, None, args.bc_steps, generator, model)
    model.requires_grad_(True)
    bc_controls = train_bc(xs, us, args.bc_steps, generator)
    # a diagnostic beside the paper's rows: the learned model with the true cost separates the
    # model's error from the learned target's
    true_cost = ShootingMPC(
        model,
        planning_cost,
        1,
        particles=args.particles,
        bound=BOUND,
        control_weight=PARAMS.force_weight,
        refine=10,
        generator=generator,
    )
    policies = dict(zip(POLICIES, (expert, mpc, bc, bc_controls, true_cost)))
    results, trajectories = {}, {"expert data": xs.cpu()}
    for name, policy in policies.items():
        row = {}
        for variance in VARIANCES:
            test_generator = torch.Generator(device=args.device).manual_seed(1000 + seed)
            test = initial_states(args.episodes, float(variance), test_generator, hanging)
            act = mpc_policy(policy) if isinstance(policy, ShootingMPC) else policy  # fresh warm starts
            states, _, costs = rollout(act, test, stage_cost, args.episode_steps)
            if variance == VARIANCES[-1]:
                trajectories[name] = states.cpu()
            row[variance] = {"mean": float(costs.mean()), "standard_error": float(costs.std() / len(costs) ** 0.5)}
        results[name] = row
    say(f"done ({time.perf_counter() - start:.0f} s)")
    return results, trajectories


def print_table(results: dict, what: str) -> None:
    print(f"\n{'policy':<10} {'cost, variance 0.04':>20} {'cost, variance 0.16':>20}   ({what})")
    for name, row in results.items():
        cells = [f"{row[v]['mean']:.2f} +- {row[v]['standard_error']:.2f}" for v in VARIANCES]
        print(f"{name:<10} {cells[0]:>20} {cells[1]:>20}", flush=True)


def over_runs(runs: list[dict]) -> dict:
    """The mean over (two or more) runs of each run's average cost, and its standard error over runs
    (the paper's Table 2)."""
    table = {}
    for name in POLICIES:
        table[name] = {}
        for variance in VARIANCES:
            means = torch.tensor([run[name][variance]["mean"] for run in runs], dtype=torch.float64)
            error = float(means.std() / len(means) ** 0.5)
            table[name][variance] = {"mean": float(means.mean()), "standard_error": error}
    return table


def plot_phase(trajectories: dict, path: Path, start: str, shown: int = 20) -> None:
    """The paper's Fig. 3: ``(theta, theta_dot)`` of the expert's training data and of the test episodes
    at the high variance for the expert, MPC-IFT and BC (``shown`` episodes each), into ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure")
        return
    panels = ("expert data", "expert", "MPC-IFT", "BC")
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), sharex=True, sharey=True)
    for ax, name in zip(axes, panels):
        states = trajectories[name][:, :shown]
        theta = torch.atan2(states[..., 3], states[..., 2])
        if start == "hanging":  # measured from hanging, so both ways up read as +-pi
            theta = torch.remainder(theta, 2 * math.pi) - math.pi
        step = torch.remainder(theta.diff(dim=0) + math.pi, 2 * math.pi) - math.pi  # each step's turn
        unwrapped = torch.cat([theta[:1], theta[:1] + step.cumsum(0)])
        for episode in range(states.shape[1]):
            ax.plot(unwrapped[:, episode], states[:, episode, 4], lw=0.8, alpha=0.7)
        title = "training data (variance 0.04)" if name == "expert data" else f"{name}, variance 0.16"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("theta from hanging [rad]" if start == "hanging" else "theta [rad]")
    axes[0].set_ylabel("theta_dot [rad/s]")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", type=int, default=100)
    parser.add_argument("--dynamics-steps", type=int, default=20000)
    parser.add_argument("--cost-steps", type=int, default=200)
    parser.add_argument("--bc-steps", type=int, default=20000)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--episode-steps", type=int, default=40, help="steps of each episode (expert data and tests)")
    parser.add_argument("--particles", type=int, default=1000, help="random-shooting candidates of every MPC solve")
    parser.add_argument(
        "--start",
        choices=["hanging", "upright"],
        default="hanging",
        help="x_0 ~ N(0, variance I) around the pole hanging (the paper's swing-up) or upright (balancing)",
    )
    parser.add_argument(
        "--learn-weights", action="store_true", help="learn the cost's weights on (x, cos, sin) with its target"
    )
    parser.add_argument(
        "--expert-refine", type=int, default=10, help="Newton steps polishing the expert's random shooting"
    )
    parser.add_argument(
        "--model-variance",
        type=float,
        default=0.5,
        help="variance of the noise added to the expert's states to make the dynamics' extra training states",
    )
    parser.add_argument("--seed", type=int, default=0, help="the first run's seed; run k uses seed + k")
    parser.add_argument("--runs", type=int, default=1, help="independent runs (the paper averages 10)")
    parser.add_argument("--workers", type=int, default=1, help="processes running the runs (spawned)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="PNG of the first run's trajectories in (theta, theta_dot) (paper Fig. 3)",
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.workers < 1:
        parser.error("--runs and --workers must be at least 1")
    start = time.perf_counter()
    seeds = list(range(args.seed, args.seed + args.runs))
    if args.workers == 1:
        outputs = [run(args, seed) for seed in seeds]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(args.workers, args.runs), mp_context=context) as pool:
            outputs = list(pool.map(run, [args] * len(seeds), seeds))
    runs = [result for result, _ in outputs]
    if args.plot is not None:
        plot_phase(outputs[0][1], args.plot, args.start)
    for seed, result in zip(seeds, runs):
        print_table(result, f"run {seed}: mean +- standard error over {args.episodes} episodes")
    table = runs[0] if args.runs == 1 else over_runs(runs)
    if args.runs > 1:
        print_table(table, f"mean +- standard error over {args.runs} runs")
    emit_result(
        {
            "example": "mpc_ift_cartpole",
            "start": args.start,
            "runs": args.runs,
            "seconds": round(time.perf_counter() - start),
            "average_cost": table,
            "per_run": runs if args.runs > 1 else None,
        },
        args.record,
        script=__file__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
