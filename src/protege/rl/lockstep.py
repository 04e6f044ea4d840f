"""Play one episode per seed with a few environments stepped in lockstep: the loop shared by the
flat policy's rollouts (`rl/babyai_rollout.py`), the hierarchical agent's evaluation and DAgger's
labelled play (`systems/subgoals`).

Written here rather than with gymnasium's vector environments: those reset a finished environment
by themselves (with no seed of ours) and step every environment every time, while here each
environment takes the next seed of a queue when its episode ends and idles once the queue is empty,
so every seed is played exactly once and the result does not depend on the number of environments.
"""

from collections.abc import Callable, Sequence

import torch


def lockstep(envs: Sequence, seeds: list[int], act: Callable, on_start: Callable, on_step: Callable) -> None:
    """Play `seeds` on `envs`. Each round:
    - every environment whose episode ended (all of them at first) resets with the next seed and
      calls `on_start(i, env, seed, obs)`; with the queue empty it idles from then on;
    - `act(obs, fresh, active)` returns one action per environment (one batched forward): `obs` the
      current observation of every environment (an idle one's is stale), `fresh` [N] bool marks the
      environments whose memory must be reset (a new episode, or idle), `active` the indices that
      will step;
    - each active environment steps, and `on_step(i, action, obs, reward, terminated, truncated)`
      records it."""
    n = len(envs)
    queue, current, obs = list(seeds), [None] * n, [None] * n
    fresh = torch.ones(n, dtype=torch.bool)
    while True:
        for i, env in enumerate(envs):
            if fresh[i]:
                current[i] = queue.pop(0) if queue else None
                if current[i] is not None:
                    obs[i], _ = env.reset(seed=current[i])
                    on_start(i, env, current[i], obs[i])
        active = [i for i in range(n) if current[i] is not None]
        if not active:
            return
        actions = act(obs, fresh, active)
        fresh = torch.zeros(n, dtype=torch.bool)
        for i in active:
            action = int(actions[i])
            obs[i], reward, terminated, truncated, _ = envs[i].step(action)
            on_step(i, action, obs[i], float(reward), bool(terminated), bool(truncated))
            fresh[i] = terminated or truncated
        for i in range(n):  # finished environments without a new seed stay idle
            fresh[i] |= current[i] is None
