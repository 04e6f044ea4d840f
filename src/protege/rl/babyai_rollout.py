"""Playing episodes with a language-conditioned BabyAI policy, and loading one from a run.

Shared by held-out evaluation (`systems/agent_imitation/evaluate.py`) and the studio, which shows
a trained agent's episodes to people (`systems/feedback/episodes.py`). Environments come in through
a factory (rl knows no world); each finished episode is recorded whole (seed, mission, actions,
rewards, how it ended), so it can be stored as (level, seed, actions) and replayed.
"""

from collections.abc import Callable
from pathlib import Path

import torch

from protege.core.errors import UserError
from protege.nn.babyai_policy import (
    BabyAIPolicy,
    PolicyConfig,
    reset_state,
    tokenize,
    view_tensors,
)
from protege.rl.lockstep import lockstep


def play_episodes(model: BabyAIPolicy, make_env: Callable[[], object], seeds: list[int],
                  greedy: bool = True, n_envs: int = 16, sample_seed: int = 0,
                  on_episode=None) -> list[dict]:
    """Play one episode per seed with `min(n_envs, len(seeds))` environments stepped in lockstep
    (one batched forward per step); returns [{seed, mission, actions, rewards, terminated,
    truncated, return, length}] in seed order. `on_episode()` is called after each finished
    episode (progress reporting)."""
    envs = [make_env() for _ in range(min(n_envs, len(seeds)))]
    gen, taken, results, state = torch.Generator().manual_seed(sample_seed), [None] * len(envs), {}, None

    def on_start(i, env, seed, obs):
        taken[i] = {"seed": seed, "mission": str(obs["mission"]), "actions": [], "rewards": []}

    def act(obs, fresh, active):
        nonlocal state
        state = reset_state(state, fresh)
        images, directions = view_tensors(obs)
        actions, _, _, state = model.act(images, directions, tokenize([o["mission"] for o in obs]), state,
                                         greedy, gen)
        return actions

    def on_step(i, action, obs, reward, terminated, truncated):
        t = taken[i]
        t["actions"].append(action); t["rewards"].append(reward)
        if terminated or truncated:
            results[t["seed"]] = {**t, "terminated": terminated, "truncated": truncated,
                                  "return": sum(t["rewards"]), "length": len(t["actions"])}
            if on_episode is not None:
                on_episode()

    lockstep(envs, seeds, act, on_start, on_step)
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
