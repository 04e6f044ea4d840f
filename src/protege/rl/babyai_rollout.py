"""Playing episodes with a language-conditioned BabyAI policy, and loading one from a run.

Shared by held-out evaluation (`systems/agent_imitation/evaluate.py`) and the studio, which shows
a trained agent's episodes to people (`systems/feedback/episodes.py`). Environments come in through
a factory (rl knows no world); each finished episode is recorded whole (seed, mission, actions,
rewards, how it ended), so it can be stored as (level, seed, actions) and replayed.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from protege.core.errors import UserError
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig, reset_state, tokenize


def play_episodes(model: BabyAIPolicy, make_env: Callable[[], object], seeds: list[int],
                  greedy: bool = True, n_envs: int = 16, sample_seed: int = 0,
                  on_episode=None) -> list[dict]:
    """Play one episode per seed with `min(n_envs, len(seeds))` environments stepped in lockstep
    (one batched forward per step); returns [{seed, mission, actions, rewards, terminated,
    truncated, return, length}] in seed order. `on_episode()` is called after each finished
    episode (progress reporting)."""
    envs = [make_env() for _ in range(min(n_envs, len(seeds)))]
    queue, results, gen = list(seeds), {}, torch.Generator().manual_seed(sample_seed)
    current, obs, taken = [None] * len(envs), [None] * len(envs), [None] * len(envs)
    state = None
    done = torch.ones(len(envs), dtype=torch.bool)
    while True:
        for i, env in enumerate(envs):
            if done[i]:
                if queue:
                    current[i] = queue.pop(0)
                    obs[i], _ = env.reset(seed=current[i])
                    taken[i] = {"mission": str(obs[i]["mission"]), "actions": [], "rewards": []}
                else:
                    current[i] = None
        active = [i for i in range(len(envs)) if current[i] is not None]
        if not active:
            break
        state = reset_state(state, done)
        images = torch.from_numpy(np.stack([obs[i]["image"] for i in range(len(envs))]))
        directions = torch.tensor([obs[i]["direction"] for i in range(len(envs))])
        tokens = tokenize([obs[i]["mission"] for i in range(len(envs))])
        actions, _, _, state = model.act(images, directions, tokens, state, greedy, gen)
        done = torch.zeros(len(envs), dtype=torch.bool)
        for i in active:
            obs[i], reward, terminated, truncated, _ = envs[i].step(int(actions[i]))
            taken[i]["actions"].append(int(actions[i]))
            taken[i]["rewards"].append(float(reward))
            if terminated or truncated:
                results[current[i]] = {"seed": current[i], **taken[i], "terminated": bool(terminated),
                                       "truncated": bool(truncated),
                                       "return": sum(taken[i]["rewards"]), "length": len(taken[i]["actions"])}
                done[i] = True
                if on_episode is not None:
                    on_episode()
        for i in range(len(envs)):  # finished envs without a new seed stay idle
            done[i] |= current[i] is None
    return [results[s] for s in seeds]


def load_policy(path: Path) -> tuple[BabyAIPolicy, PolicyConfig, dict]:
    """A policy from a run directory (its latest checkpoint) or a checkpoint folder."""
    from protege.core.runs import load_weights, read_run_config
    path = Path(path)
    if (path / "checkpoints" / "latest").exists():
        path = path / "checkpoints" / (path / "checkpoints" / "latest").read_text().strip()
    run_dir = path.parent.parent
    if not (path / "model.safetensors").exists() or not (run_dir / "config.yaml").exists():
        raise UserError(f"{path}: not a BabyAI run directory or checkpoint (no model.safetensors "
                        f"with a config.yaml two levels up)")
    config = read_run_config(run_dir)
    try:
        policy_cfg = PolicyConfig(**config.get("policy", {}))
    except (TypeError, ValueError) as e:
        raise UserError(f"{run_dir / 'config.yaml'}: policy: {e}") from None
    model = BabyAIPolicy(policy_cfg)
    try:
        model.load_state_dict(load_weights(path / "model.safetensors"))
    except RuntimeError as e:
        raise UserError(f"{path}/model.safetensors: does not fit a BabyAI policy ({str(e)[:200]})") from None
    return model, policy_cfg, config
