"""Environment steps per second with learning on (one gradient step per environment step, batch 256,
two 256-unit hidden layers) on cartpole-swingup: the bare environment, our SAC (the default `precision:
auto`, i.e. bf16 hidden layers where the CPU has native bfloat16 and fp32 elsewhere; and pinned to fp32
and to bf16), Stable-Baselines3's SAC, and SAC + FORM / GAIL / GAIfO reward models with the
defaults (`form_`, `gail_`, `gaifo_steps_per_s`: auto precision, FORM's cached log p_E, the gradient
penalty on 64 interpolates in standardised units, a discriminator step on every 2nd SAC step), GAIL and
GAIfO with a discriminator step on every SAC step (`*_every_step_*`), and FORM / GAIL with the reward-model
settings the results table's recipes pin (`*_before_steps_per_s`, see RECIPE_SETTINGS).

    PYTHONPATH=src .venv/bin/python benchmarks/control_throughput.py [--steps 400] [--repeats 2]

Each learner first takes `--warmup` random steps (filling the replay, no updates), then the timed
`--steps` steps. All measurements run in one process, one thread, interleaved over `--repeats`
rounds; the best round of each is reported (the machine is shared, so the best round is the one
least disturbed by other processes), and the ratios also from the median round (`*_median`) and from the
median steps per CPU second of the thread (`*_cpu`: leaves out the time other jobs held the core).
The last line printed is one JSON object; it says where it ran (CPU model, torch's CPU capability,
threads, load average and what `auto` resolved to: `protege.core.precision.machine_info`).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from protege.core.precision import machine_info

TASK = "cartpole-swingup"


def clock() -> tuple[float, float]:
    """(wall time, CPU time of this thread): everything runs on one thread, and on a shared machine the CPU
    time leaves out the time other jobs held the core, so its rate is the steadier measure."""
    return time.perf_counter(), time.thread_time()


def rates(steps: int, start: tuple[float, float], end: tuple[float, float]) -> tuple[float, float]:
    """(steps per wall second, steps per CPU second)."""
    return steps / (end[0] - start[0]), steps / (end[1] - start[1])


def raw_env(steps: int) -> tuple[float, float]:
    from protege.worlds.control.suite import make_control_env
    env = make_control_env(TASK, seed=0)
    env.reset(seed=0)
    env.action_space.seed(0)
    start = clock()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return rates(steps, start, clock())


# the reward-model settings the results table's recipes pin (fp32, p_E evaluated every update, the gradient
# penalty on the full batch, a discriminator step on every SAC step): the `*_before_steps_per_s` rows
RECIPE_SETTINGS = {"form": {"precision": "fp32", "cache_expert": False},
                   "gail": {"precision": "fp32", "gp_batch": 0, "disc_every": 1}}


def ours(method: str, steps: int, warmup: int, demos_dir: Path, precision: str = "auto", before: bool = False,
         overrides: dict | None = None) -> tuple[float, float]:
    """With the defaults (what `protege run` uses unless a recipe pins otherwise); `precision`: SAC's;
    `before`: the reward models with the table recipes' settings (`RECIPE_SETTINGS`); `overrides`: other
    config fields."""
    from protege.core.config import from_dict
    from protege.rl.online import LoopConfig, train_online
    from protege.rl.sac import SAC, SACConfig
    from protege.systems.form.experiment import Config, _reward_model
    from protege.worlds.control.demos import load_demos
    from protege.worlds.control.suite import make_control_env
    torch.manual_seed(0)
    old = RECIPE_SETTINGS if before else {}
    data = {"method": method, **old, **(overrides or {})}
    data["form"] = {"expert_steps": 10, **data.get("form", {})}
    cfg = from_dict(Config, data, "benchmark")
    env, eval_env = make_control_env(TASK, seed=0), make_control_env(TASK, seed=1)
    demos = load_demos(demos_dir, TASK, env.observation_space.shape[0])
    agent = SAC(env.observation_space.shape[0], env.action_space.shape[0],
                SACConfig(learning_starts=warmup, precision=precision), _reward_model(cfg, demos))
    marks = []
    train_online(env, eval_env, agent, LoopConfig(steps=warmup + steps, eval_every=10**9, eval_episodes=0),
                 seed=0, on_step=lambda step, replay, rng: marks.append(clock()), show_progress=False)
    return rates(len(marks) - 1, marks[0], marks[-1])


def sb3(steps: int, warmup: int) -> tuple[float, float]:
    from stable_baselines3 import SAC as SB3SAC

    from protege.worlds.control.suite import make_control_env
    env = make_control_env(TASK, seed=0)
    model = SB3SAC("MlpPolicy", env, batch_size=256, learning_starts=warmup, train_freq=1, gradient_steps=1,
                   policy_kwargs={"net_arch": [256, 256]}, seed=0, device="cpu")
    model.learn(warmup + 10)
    start = clock()
    model.learn(steps, reset_num_timesteps=False)
    return rates(steps, start, clock())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="measure only these keys' methods (e.g. sac sb3_sac)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # the allocator setting our training loop applies (process-wide), set before anything is measured so
    # that every method, Stable-Baselines3 included, runs under it
    from protege.rl.online import retain_freed_memory
    retain_freed_memory()
    from protege.worlds.control.demos import record_demos
    tmp = Path(tempfile.mkdtemp())
    record_demos(TASK, 2, tmp / "demos", random_episodes=2)
    runs = {
        "raw_env_steps_per_s": lambda: raw_env(5000),
        "sac_steps_per_s": lambda: ours("sac", args.steps, args.warmup, tmp / "demos"),
        "sac_fp32_steps_per_s": lambda: ours("sac", args.steps, args.warmup, tmp / "demos", precision="fp32"),
        "sac_bf16_steps_per_s": lambda: ours("sac", args.steps, args.warmup, tmp / "demos", precision="bf16"),
        "sb3_sac_steps_per_s": lambda: sb3(args.steps, args.warmup),
        "form_steps_per_s": lambda: ours("form", args.steps, args.warmup, tmp / "demos"),
        "gail_steps_per_s": lambda: ours("gail", args.steps, args.warmup, tmp / "demos"),
        "gaifo_steps_per_s": lambda: ours("gaifo", args.steps, args.warmup, tmp / "demos"),
        "gail_every_step_steps_per_s": lambda: ours("gail", args.steps, args.warmup, tmp / "demos",
                                                    overrides={"gail": {"disc_every": 1}}),
        "gaifo_every_step_steps_per_s": lambda: ours("gaifo", args.steps, args.warmup, tmp / "demos",
                                                     overrides={"gail": {"disc_every": 1}}),
        "form_before_steps_per_s": lambda: ours("form", args.steps, args.warmup, tmp / "demos", before=True),
        "gail_before_steps_per_s": lambda: ours("gail", args.steps, args.warmup, tmp / "demos", before=True),
    }
    if args.only:
        runs = {k: fn for k, fn in runs.items() if k.removesuffix("_steps_per_s") in args.only}
    values = {key: [] for key in runs}
    cpu = {key: [] for key in runs}
    for round_ in range(args.repeats):
        for key, fn in runs.items():
            wall, per_cpu_s = fn()
            values[key].append(wall)
            cpu[key].append(per_cpu_s)
            print(f"round {round_} {key}: {wall:.1f} (per CPU second {per_cpu_s:.1f})", flush=True)
    best = {k: max(v) for k, v in values.items()}
    median = {k: float(np.median(v)) for k, v in values.items()}
    cpu_median = {k: float(np.median(v)) for k, v in cpu.items()}
    result = {k: round(v, 1) for k, v in best.items()}
    result.update({k.replace("_steps_per_s", "_cpu_steps_per_s"): round(v, 1) for k, v in cpu_median.items()})
    # best round, the median round (robust to one lucky round), and the median of steps per CPU second (robust
    # to other jobs on a shared machine; it leaves out time the process waited for a core)
    for suffix, stat in (("", best), ("_median", median), ("_cpu", cpu_median)):
        if "sb3_sac_steps_per_s" in stat and "sac_steps_per_s" in stat:
            result[f"sac_speedup_vs_sb3{suffix}"] = round(stat["sac_steps_per_s"] / stat["sb3_sac_steps_per_s"], 2)
        for method in ("form", "gail", "gaifo", "gail_every_step", "gaifo_every_step"):
            if f"{method}_steps_per_s" in stat and "sac_steps_per_s" in stat:
                result[f"{method}_slowdown_vs_sac{suffix}"] = round(stat["sac_steps_per_s"] / stat[f"{method}_steps_per_s"], 2)
    result.update({"task": TASK, "timed_steps": args.steps, "repeats": args.repeats, **machine_info()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
