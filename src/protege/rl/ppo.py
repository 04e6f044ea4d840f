"""A lean recurrent PPO (arXiv:1707.06347) for BabyAI policies, used as GAIL's policy optimiser and
for RL against rewards learned from marks (`systems/feedback/ibt_rl.py`).

Written here rather than taken from sb3-contrib: its RecurrentPPO builds its own LSTM policy from
flat Box observations and does not take dict observations holding text, nor a FiLM-conditioned
policy whose memory must reset mid-segment; wrapping our model into its policy classes would be
longer than this file. Structure follows CleanRL's ppo: collect, GAE, clipped updates.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from protege.core.config_help import check_fields
from protege.nn.babyai_policy import BabyAIPolicy, reset_state, tokenize, view_tensors


@dataclass
class PPOConfig:
    n_envs: int = 8
    """environments stepped in lockstep"""
    rollout_steps: int = 64
    """steps per environment per iteration (a segment; the LSTM state is carried across)"""
    epochs: int = 4
    """passes over each iteration's segments"""
    minibatches: int = 2
    """minibatches per epoch, split over environments (whole segments, for the recurrent memory)"""
    lr: float = 3e-4
    """Adam learning rate of the policy"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE's lambda (0: one-step TD advantages, 1: Monte Carlo returns)"""
    clip: float = 0.2
    """PPO's clipping range of the probability ratio, 1 +- clip"""
    ent_coef: float = 0.01
    """weight of the entropy bonus"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    grad_clip: float = 0.5
    """max global gradient norm of the policy"""
    kl_coef: float = 0.0
    """weight of KL(pi(.|s) || pi_ref(.|s)) at the visited states, toward a fixed reference policy
    (the BC start, passed to `collect`); keeps BC+RL near its demonstrations. 0: no reference"""

    def __post_init__(self):
        check_fields(self, n_envs=">=1", rollout_steps=">=1", epochs=">=1", minibatches=">=1",
                     lr=">0", gamma="[0,1]", gae_lambda="[0,1]", clip=">0", ent_coef=">=0",
                     vf_coef=">=0", grad_clip=">0", kl_coef=">=0")
        if self.minibatches > self.n_envs:
            raise ValueError(f"minibatches ({self.minibatches}) must be <= n_envs ({self.n_envs}): "
                             f"a minibatch holds whole environment segments")


class EnvPool:
    """N environments with their current observation, memory and episode statistics; episode i
    of the pool resets with seed `seed + i` (in the order episodes start). `success(terminated,
    reward)` judges the step that ends an episode: the world's one rule (for BabyAI
    `protege.worlds.babyai.levels.episode_success`; rl does not import worlds).

    Its state (`state_dict`) holds no environment object: minigrid's state is not safely
    serialisable, so each environment is recorded as the seed of its current episode and the
    actions taken since that reset, and `load_state_dict` resets with the seed and replays them
    (checking that the replay reaches the saved observation)."""

    def __init__(self, envs: list, seed: int, success: Callable[[bool, float], bool]):
        n = len(envs)
        self.envs, self.success = envs, success
        self.next_seed = seed
        self.episode_seeds = [0] * n
        self.actions: list[list[int]] = [[] for _ in range(n)]  # taken since each env's reset
        self.obs = [self._reset(i) for i in range(n)]
        self.state = None  # recurrent memory (h, c), each [1, N, D], or None before the first step
        self.ref_state = None  # the reference policy's memory, when `collect` is given one
        self.starts = torch.ones(n, dtype=torch.bool)
        self.ep_return, self.ep_length = np.zeros(n), np.zeros(n, np.int64)
        self.finished: list[tuple[bool, float, int]] = []  # (success, env return, length)

    def _reset(self, i: int):
        self.episode_seeds[i], self.actions[i] = self.next_seed, []
        obs, _ = self.envs[i].reset(seed=self.next_seed)
        self.next_seed += 1
        return obs

    def step(self, actions: torch.Tensor) -> torch.Tensor:
        """Step every environment; a finished episode is recorded and its env reset. Returns
        dones [N] bool (those envs now show a new episode's first observation). The step's
        environment rewards and the observations it reached (an episode's last one, not the next
        episode's first) stay in `last_rewards` and `reached` (for rewards of a learned utility)."""
        dones = torch.zeros(len(self.envs), dtype=torch.bool)
        self.last_rewards = torch.zeros(len(self.envs))
        self.reached = [None] * len(self.envs)
        for i, env in enumerate(self.envs):
            action = int(actions[i])
            obs, reward, terminated, truncated, _ = env.step(action)
            self.last_rewards[i], self.reached[i] = float(reward), obs
            self.actions[i].append(action)
            self.ep_return[i] += reward
            self.ep_length[i] += 1
            if terminated or truncated:
                self.finished.append((self.success(terminated, reward), float(self.ep_return[i]),
                                      int(self.ep_length[i])))
                self.ep_return[i], self.ep_length[i] = 0.0, 0
                obs = self._reset(i)
                dones[i] = True
            self.obs[i] = obs
        self.starts = dones
        return dones

    def state_dict(self) -> dict:
        """Everything that continues the pool exactly, as `torch.load(weights_only=True)` reads it."""
        return {"next_seed": self.next_seed, "episode_seeds": list(self.episode_seeds),
                "actions": [list(a) for a in self.actions],
                "obs": [{"image": torch.from_numpy(np.array(o["image"])), "direction": int(o["direction"]),
                         "mission": str(o["mission"])} for o in self.obs],
                "memory": None if self.state is None else tuple(s.clone() for s in self.state),
                "ref_memory": None if self.ref_state is None else tuple(s.clone() for s in self.ref_state),
                "starts": self.starts.clone(), "ep_return": torch.from_numpy(self.ep_return.copy()),
                "ep_length": torch.from_numpy(self.ep_length.copy()),
                "finished": [list(f) for f in self.finished]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["episode_seeds"]) != len(self.envs):
            raise ValueError(f"saved pool has {len(state['episode_seeds'])} environments, "
                             f"this one {len(self.envs)}")
        for i, (seed, actions, saved) in enumerate(zip(state["episode_seeds"], state["actions"],
                                                       state["obs"])):
            self.next_seed = seed
            self.obs[i] = self._reset(i)
            for action in actions:
                self.obs[i], *_ = self.envs[i].step(int(action))
            self.actions[i] = [int(a) for a in actions]
            if not _same_obs(self.obs[i], saved):
                raise RuntimeError(f"environment {i}: replaying {len(actions)} actions from seed "
                                   f"{seed} does not reach the saved observation")
        self.next_seed = int(state["next_seed"])
        self.state = None if state["memory"] is None else tuple(s.clone() for s in state["memory"])
        ref = state.get("ref_memory")  # absent in pools saved before the option existed
        self.ref_state = None if ref is None else tuple(s.clone() for s in ref)
        self.starts = state["starts"].clone()
        self.ep_return = state["ep_return"].numpy().copy()
        self.ep_length = state["ep_length"].numpy().copy()
        self.finished = [(bool(s), float(r), int(n)) for s, r, n in state["finished"]]


def _same_obs(obs: dict, saved: dict) -> bool:
    return (np.array_equal(obs["image"], saved["image"].numpy())
            and int(obs["direction"]) == saved["direction"] and obs["mission"] == saved["mission"])


@torch.no_grad()
def collect(model: BabyAIPolicy, pool: EnvPool, steps: int, gen: torch.Generator,
            reference: BabyAIPolicy | None = None) -> dict:
    """Roll the pool forward `steps` steps with the sampling policy. Tensors are [N, T, ...]:
    the observation before each step (images, directions, missions), what the policy did (actions,
    logp, values), starts (a new episode's first step), dones, env_rewards, and the observation
    each step reached (next_images, next_directions: an episode's last one where it ended).
    With a `reference` policy (frozen; its own memory runs along each episode in the pool), also
    its logits at every step (ref_logits [N, T, A]) for `PPOConfig.kl_coef`."""
    N = len(pool.envs)
    keys = ("images", "directions", "missions", "actions", "logp", "values", "starts", "dones",
            "env_rewards", "next_images", "next_directions") + (("ref_logits",) if reference is not None else ())
    out = {k: [] for k in keys}
    state0 = None if pool.state is None else (pool.state[0].clone(), pool.state[1].clone())
    for _ in range(steps):
        images, directions = view_tensors(pool.obs)
        missions = [o["mission"] for o in pool.obs]
        pool.state = reset_state(pool.state, pool.starts)
        actions, logits, values, pool.state = model.act(images, directions, tokenize(missions),
                                                        pool.state, greedy=False, generator=gen)
        logp = F.log_softmax(logits, -1).gather(-1, actions[:, None]).squeeze(-1)
        if reference is not None:
            pool.ref_state = reset_state(pool.ref_state, pool.starts)
            _, ref_logits, _, pool.ref_state = reference.act(images, directions, tokenize(missions),
                                                             pool.ref_state, greedy=True)
            out["ref_logits"].append(ref_logits)
        for k, v in (("images", images), ("directions", directions), ("missions", missions),
                     ("actions", actions), ("logp", logp), ("values", values),
                     ("starts", pool.starts.clone())):
            out[k].append(v)
        out["dones"].append(pool.step(actions))
        out["env_rewards"].append(pool.last_rewards)
        next_images, next_directions = view_tensors(pool.reached)
        out["next_images"].append(next_images)
        out["next_directions"].append(next_directions)
    batch = {k: torch.stack(v, 1) for k, v in out.items() if k != "missions"}
    batch["missions"] = [[out["missions"][t][i] for t in range(steps)] for i in range(N)]
    batch["state0"] = state0
    images, directions = view_tensors(pool.obs)
    _, _, last_value, _ = model.act(images, directions, tokenize([o["mission"] for o in pool.obs]),
                                    reset_state(pool.state, pool.starts), greedy=True)
    batch["last_value"] = last_value
    return batch


def gae(rewards, values, dones, last_value, gamma: float, lam: float):
    """Generalised advantage estimation over [N, T]; an episode end (success or time limit) stops
    bootstrapping (time limits are treated as terminal, a small bias at BabyAI's long limits)."""
    N, T = rewards.shape
    adv = torch.zeros_like(rewards)
    last = torch.zeros(N)
    for t in reversed(range(T)):
        next_value = last_value if t == T - 1 else values[:, t + 1]
        nonterminal = (~dones[:, t]).float()
        delta = rewards[:, t] + gamma * next_value * nonterminal - values[:, t]
        last = delta + gamma * lam * nonterminal * last
        adv[:, t] = last
    return adv, adv + values


def ppo_update(model: BabyAIPolicy, optimizer, batch: dict, rewards, cfg: PPOConfig,
               gen: torch.Generator, value_only: bool = False) -> dict:
    """Clipped-surrogate PPO epochs over whole env segments; returns metrics (ppo/...).
    `value_only` fits only the critic head (policy and shared encoder untouched): a warm-up for a
    policy that starts from BC, so an untrained critic's advantages do not undo it.
    With `cfg.kl_coef` > 0 the batch must hold `ref_logits` (`collect(..., reference=...)`) and the
    loss adds kl_coef * mean_s KL(pi(.|s) || pi_ref(.|s)), the exact categorical KL at each visited
    state (the KL-to-the-BC-policy regulariser of BC+RL, e.g. arXiv:2211.11602)."""
    if cfg.kl_coef > 0 and "ref_logits" not in batch:
        raise ValueError("kl_coef > 0 needs ref_logits in the batch: collect(..., reference=policy)")
    adv, returns = gae(rewards, batch["values"], batch["dones"], batch["last_value"], cfg.gamma,
                       cfg.gae_lambda)
    N = adv.shape[0]
    tokens_all = [tokenize(m) for m in batch["missions"]]
    metrics = {}
    for _ in range(cfg.epochs):
        for idx in torch.randperm(N, generator=gen).chunk(cfg.minibatches):
            state0 = None if batch["state0"] is None else tuple(s[:, idx] for s in batch["state0"])
            tokens = pad_cat([tokens_all[i] for i in idx])
            logits, values = model.forward_with_resets(batch["images"][idx], batch["directions"][idx],
                                                       tokens, batch["starts"][idx], state0)
            logp_all = F.log_softmax(logits, -1)
            logp = logp_all.gather(-1, batch["actions"][idx].unsqueeze(-1)).squeeze(-1)
            ratio = (logp - batch["logp"][idx]).exp()
            a = adv[idx]
            a = (a - a.mean()) / (a.std() + 1e-8)
            pg_loss = torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
            v_loss = 0.5 * (values - returns[idx]).pow(2).mean()
            entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
            loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy
            kl_ref = None
            if cfg.kl_coef > 0:
                ref = F.log_softmax(batch["ref_logits"][idx], -1)
                kl_ref = (logp_all.exp() * (logp_all - ref)).sum(-1).mean()
                loss = loss + cfg.kl_coef * kl_ref
            optimizer.zero_grad(set_to_none=True)
            if value_only:
                (cfg.vf_coef * v_loss).backward()
                for name, p in model.named_parameters():
                    if not name.startswith("critic."):
                        p.grad = None  # Adam skips parameters without a gradient
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            metrics = {"ppo/policy_loss": pg_loss.item(), "ppo/value_loss": v_loss.item(),
                       "ppo/entropy": entropy.item(),
                       "ppo/approx_kl": ((ratio - 1) - (logp - batch["logp"][idx])).mean().item(),
                       "ppo/clipfrac": ((ratio - 1).abs() > cfg.clip).float().mean().item()}
            if kl_ref is not None:
                metrics["ppo/kl_to_reference"] = kl_ref.item()
    return metrics


def pad_cat(token_rows: list) -> torch.Tensor:
    """Concatenate [T, L_i] token tensors along rows, padding L to the longest."""
    L = max(t.shape[1] for t in token_rows)
    return torch.cat([F.pad(t, (0, L - t.shape[1])) for t in token_rows])
