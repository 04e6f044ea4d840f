"""Does `torch.compile` speed up the SAC update on this CPU? Thread CPU time per update, eager against
compiled, in one process (docs/results/form.md, the AVX2 section).

What is compiled: the update's losses (actor on s' and s, target and twin critics, the three SAC losses),
with backward through the compiled graph; the fused Adam step and the target update stay eager, as in
`SAC.update`. No reward model (plain SAC on random transitions of cartpole's sizes).

    PYTHONPATH=src python benchmarks/sac_compile.py --updates 30 --repeats 5

Last line: one JSON object (ms per update, best and median of the repeats; where it ran).
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch

from protege.core.precision import machine_info
from protege.rl.sac import SAC, SACConfig, Replay

OBS_DIM, ACT_DIM = 5, 1  # cartpole-swingup


def sac_losses(agent: SAC, obs, act, next_obs, reward, done):
    """The sum of SAC's critic, actor and temperature losses, as `SAC.update` forms it (`SAC.losses`)."""
    critic_loss, actor_loss, alpha_loss, _ = agent.losses(obs, act, next_obs, reward, done,
                                                          agent.log_alpha.exp().detach())
    return critic_loss + actor_loss + alpha_loss


def ms_per_update(compiled: bool, updates: int, repeats: int) -> tuple[list[float], float]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = SAC(OBS_DIM, ACT_DIM, SACConfig(precision="fp32"))
    replay = Replay(10_000, OBS_DIM, ACT_DIM)
    for _ in range(5_000):
        replay.add(rng.standard_normal(OBS_DIM), rng.uniform(-1, 1, ACT_DIM), rng.standard_normal(),
                   rng.standard_normal(OBS_DIM), 0.0)
    losses = torch.compile(sac_losses, dynamic=False) if compiled else sac_losses

    def update():
        b = replay.sample(rng, agent.cfg.batch_size)
        agent.opt.zero_grad(set_to_none=True)
        losses(agent, b.obs, b.act, b.next_obs, b.reward, b.done).backward()
        agent.opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(agent._target_params, agent._online_params, agent.cfg.tau)

    start = time.time()
    for _ in range(3):  # warm-up (and compilation)
        update()
    warmup_s = time.time() - start
    rounds = []
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(updates):
            update()
        rounds.append((time.thread_time() - start) / updates * 1000)
    return rounds, warmup_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {}
    for name, compiled in (("eager", False), ("compiled", True)):
        rounds, warmup_s = ms_per_update(compiled, args.updates, args.repeats)
        print(f"{name}: ms per update {[round(r, 2) for r in rounds]} (warm-up {warmup_s:.1f} s)")
        result.update({f"{name}_ms_best": round(min(rounds), 2), f"{name}_ms_median": round(statistics.median(rounds), 2),
                       f"{name}_warmup_s": round(warmup_s, 1)})
    result["compiled_speedup_median"] = round(result["eager_ms_median"] / result["compiled_ms_median"], 3)
    print(json.dumps({**result, **machine_info()}))


if __name__ == "__main__":
    main()
