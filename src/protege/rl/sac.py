"""A lean Soft Actor-Critic (arXiv:1801.01290, 1812.05905) that can learn from a learned reward.

Why our own instead of Stable-Baselines3: the issue's speed goal (>= 2x SB3's steps/s with one
gradient step per environment step). Where the time goes and what we do about it:
  * one fused update: critic, actor, temperature and an optional reward model's own loss are summed
    and back-propagated once, then ONE Adam step (fused CPU kernel) updates every parameter. The
    actor's loss reads the critic through detached weights, so no gradient crosses between them
    (the actor therefore sees the pre-update critic, as in fused JAX implementations);
  * the twin critics are one batched network (weights [2, in, out], `baddbmm`), halving the kernels;
  * bfloat16 hidden layers (where the CPU has native bfloat16: `precision: auto`) without autocast: each network's weights are cast once per update and shared
    by both of its evaluations (actor on s' and s; critic on (s, a) and, through the detached cast, on
    (s, pi)), where autocast cast them again at every call; the Q heads use gemv (a bmm with one output
    column is several times slower on this CPU); ReLU in place;
  * a preallocated numpy replay sampled by index, converted with `torch.from_numpy` (no copies of
    the whole buffer, no Python objects per transition); target update with `_foreach_lerp_`.

The reward used in the TD target is the environment's unless a `RewardModel`
(`protege.rl.reward_model`, the protocol PPO takes too) is given; its
`loss_and_reward(batch)` is evaluated on each sampled batch, so a reward that changes during training
(FORM's agent model, GAIL's discriminator) is always read fresh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from protege.core.config_help import check_fields
from protege.core.precision import resolve_precision
from protege.nn.distributions import bounded_log_std, tanh_gaussian_sample


@dataclass
class SACConfig:
    hidden: int = 256
    """width of the two hidden layers of actor and critics"""
    batch_size: int = 256
    """transitions sampled from the replay per update (one update per environment step)"""
    lr: float = 3e-4
    """Adam learning rate of actor, critics and temperature"""
    gamma: float = 0.99
    """discount of the soft TD target"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    init_alpha: float = 1.0
    """initial entropy temperature (tuned automatically towards -act_dim entropy)"""
    learning_starts: int = 1000
    """uniform random actions (and no updates) for this many environment steps"""
    buffer_size: int = 1_000_000
    """replay capacity in transitions (a ring buffer: the oldest are overwritten)"""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """bf16: hidden layers' matmuls in bfloat16 (fp32 weights, accumulation and output layers), ~1.3-2x
    faster where the CPU has native bfloat16 and 10-17x slower where it does not; auto: bf16 only on such
    a CPU, else fp32 (resolved when the config is built, see protege.core.precision)"""
    act_bf16: bool = False
    """with precision bf16, bfloat16 also when choosing each environment action (batch of one); off by
    default: casting the weights costs more than it saves on a one-row matmul (~0.3 ms -> ~0.15 ms a step)"""

    def __post_init__(self):
        check_fields(self, hidden=">=1", batch_size=">=1", lr=">0", gamma="[0,1]", tau="(0,1]",
                     init_alpha=">0", learning_starts=">=0", buffer_size=">=1")
        self.precision = resolve_precision(self.precision)


@dataclass(frozen=True)
class Batch:
    """Transitions sampled from the replay: obs/next_obs [B, obs_dim], act [B, act_dim],
    reward/done [B] (environment reward; done is true termination, not time-limit truncation),
    key [B] int64: each transition's insertion number (unique over the run, also after the ring
    buffer overwrites a slot), so a reward model can cache per-transition values; None if unknown."""
    obs: Tensor
    act: Tensor
    next_obs: Tensor
    reward: Tensor
    done: Tensor
    key: Tensor | None = None


class Replay:
    """Preallocated ring buffer of transitions (float32 numpy)."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.key = np.zeros(capacity, np.int64)
        self.capacity, self.size, self.pos, self.added = capacity, 0, 0, 0

    def add(self, obs, act, reward, next_obs, done) -> None:
        i = self.pos
        self.obs[i], self.act[i], self.reward[i], self.next_obs[i], self.done[i] = obs, act, reward, next_obs, done
        self.key[i], self.added = self.added, self.added + 1
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
        idx = rng.integers(0, self.size, batch_size)
        t = torch.from_numpy
        return Batch(t(self.obs[idx]), t(self.act[idx]), t(self.next_obs[idx]), t(self.reward[idx]),
                     t(self.done[idx]), t(self.key[idx]))

    ARRAYS = ("obs", "next_obs", "act", "reward", "done", "key")

    def state_dict(self) -> dict:
        """The stored transitions (the filled slots only) and the ring position, as tensors and ints."""
        return {"size": self.size, "pos": self.pos, "added": self.added,
                **{name: torch.from_numpy(getattr(self, name)[:self.size].copy()) for name in self.ARRAYS}}

    def load_state_dict(self, state: dict) -> None:
        if int(state["size"]) > self.capacity:
            raise ValueError(f"replay state holds {state['size']} transitions, capacity is {self.capacity}")
        self.size, self.pos, self.added = int(state["size"]), int(state["pos"]), int(state["added"])
        for name in self.ARRAYS:
            getattr(self, name)[:self.size] = state[name].numpy()


class MLP(nn.Module):
    """Linear-ReLU stack; with `bf16` the hidden layers' matmuls run in bfloat16 (weights cast once per
    call, fp32 accumulation) while the output layer stays fp32 (Q-values and log-std need the precision,
    the hidden features do not). Computes what the same layers under bfloat16 autocast compute, up to
    rounding (the first layer adds its bias inside the matmul, see `mlp`)."""

    def __init__(self, sizes: list[int], bf16: bool = False):
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-2], sizes[1:-1]))
        self.out = nn.Linear(sizes[-2], sizes[-1])
        self.bf16 = bf16

    def forward(self, x: Tensor, bf16: bool | None = None) -> Tensor:
        """`bf16` overrides the network's setting for this call."""
        return mlp(x, cast_hidden(self.params(), self.bf16 if bf16 is None else bf16))

    def params(self) -> list[tuple[Tensor, Tensor]]:
        """[(weight [out, in], bias [out])] of every layer, the output layer last."""
        return [(layer.weight, layer.bias) for layer in self.hidden] + [(self.out.weight, self.out.bias)]


def cast_hidden(params: list[tuple[Tensor, Tensor]], bf16: bool) -> list[tuple[Tensor, Tensor]]:
    """The hidden layers' (weight, bias) in bfloat16 when `bf16` (differentiable casts, done once per update
    and shared by every evaluation in it); the output layer stays fp32."""
    if not bf16:
        return params
    return [(w.to(torch.bfloat16), b.to(torch.bfloat16)) for w, b in params[:-1]] + params[-1:]


def mlp(x: Tensor, params: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Linear-ReLU stack on `cast_hidden` params: hidden layers in their dtype, the output layer fp32 (as
    `MLP` under autocast). Batched (x [n, R, in], weights [n, in, out], biases [n, 1, out]; returns
    [n, R, out], or [n, R] for one output) or plain (x [R, in], nn.Linear's [out, in] weights)."""
    (w, b), *hidden, (w_out, b_out) = params
    # first layer (a few input features): the bias as one more input row fed by a constant 1, so the matmul
    # writes its output once instead of initialising it with the broadcast bias first
    x = torch.cat([x, x.new_ones(x.shape[:-1] + (1,))], -1).to(w.dtype)
    if x.dim() == 3:
        x = torch.relu_(torch.bmm(x, torch.cat([w, b], -2)))
    else:
        x = torch.relu_(torch.mm(x, torch.cat([w, b.unsqueeze(1)], 1).t()))
    for w, b in hidden:  # relu in place: the matmul's backward reads only its inputs
        x = torch.relu_(torch.baddbmm(b, x, w) if x.dim() == 3 else torch.addmm(b, x, w.t()))
    x = x.float()
    if x.dim() == 2:
        return torch.addmm(b_out, x, w_out.t())
    if w_out.shape[-1] == 1:  # Q-value heads: a bmm with one output column is ~6x slower here than gemv
        return torch.stack([torch.addmv(b_out[i, 0], x[i], w_out[i, :, 0]) for i in range(len(w_out))])
    return torch.baddbmm(b_out, x, w_out)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy; actions in [-1, 1] (the Control Suite's action range)."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, bf16: bool = False):
        super().__init__()
        self.net = MLP([obs_dim, hidden, hidden, 2 * act_dim], bf16)

    def forward(self, obs: Tensor, deterministic: bool = False, bf16: bool | None = None) -> tuple[Tensor, Tensor]:
        """(action [B, act_dim], log pi(action|obs) [B]); `bf16` overrides the network's setting."""
        mean, log_std = self._mean_log_std(obs, bf16)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[0])
        return tanh_gaussian_sample(mean, log_std)

    def forward_pair(self, next_obs: Tensor, obs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(next action, its log-prob) without gradient and (action, log-prob) of `obs` with gradient, the
        weights cast to bfloat16 once for both; the same random draws as `forward(next_obs)`, `forward(obs)`."""
        params = cast_hidden(self.net.params(), self.net.bf16)
        with torch.no_grad():
            mean, log_std = mlp(next_obs, [(w.detach(), b.detach()) for w, b in params]).chunk(2, -1)
            next_act, next_logp = tanh_gaussian_sample(mean, self._squash_log_std(log_std))
        mean, log_std = mlp(obs, params).chunk(2, -1)
        return next_act, next_logp, *tanh_gaussian_sample(mean, self._squash_log_std(log_std))

    def sample(self, obs: Tensor, deterministic: bool = False, bf16: bool | None = None) -> Tensor:
        """The action alone, without its log-probability (what acting in the environment needs);
        the same draw as `forward` given the same random state."""
        mean, log_std = self._mean_log_std(obs, bf16)
        if deterministic:
            return torch.tanh(mean)
        return torch.tanh(torch.addcmul(mean, log_std.exp(), torch.randn_like(mean)))

    def _mean_log_std(self, obs: Tensor, bf16: bool | None) -> tuple[Tensor, Tensor]:
        mean, log_std = self.net(obs, bf16).chunk(2, -1)
        return mean, self._squash_log_std(log_std)

    def _squash_log_std(self, log_std: Tensor) -> Tensor:
        # squash log-std smoothly into [MIN, MAX] (CleanRL/DrQ) rather than clipping: keeps gradients
        return bounded_log_std(log_std, self.LOG_STD_MIN, self.LOG_STD_MAX)


class TwinQ(nn.Module):
    """Two Q-networks evaluated as one batched MLP: weights [2, in, out]; forward -> Q [2, B]."""

    def __init__(self, in_dim: int, hidden: int, n: int = 2, bf16: bool = False):
        super().__init__()
        self.bf16 = bf16
        sizes = [in_dim, hidden, hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / math.sqrt(fan_in)  # nn.Linear's default initialisation, per member
            self.weights.append(nn.Parameter(torch.empty(n, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, fan_out).uniform_(-bound, bound)))
        self.n = n

    def forward(self, obs: Tensor, act: Tensor, detach: bool = False) -> Tensor:
        """Q [n, B]; hidden layers in bfloat16 if `bf16`, fp32 output layer."""
        params = [(w.detach(), b.detach()) if detach else (w, b) for w, b in zip(self.weights, self.biases)]
        return mlp(torch.cat([obs, act], -1).expand(self.n, -1, -1), cast_hidden(params, self.bf16))

    def forward_pair(self, obs: Tensor, act: Tensor, pi: Tensor) -> tuple[Tensor, Tensor]:
        """(Q(s, a), Q(s, pi)) [n, B] each, the weights cast once for both: Q(s, a) trains the critic; Q(s, pi)
        reads it through detached weights, so it passes gradient to pi only (the actor's loss must not train
        the critic)."""
        params = cast_hidden(list(zip(self.weights, self.biases)), self.bf16)
        q = mlp(torch.cat([obs, act], -1).expand(self.n, -1, -1), params)
        q_pi = mlp(torch.cat([obs, pi], -1).expand(self.n, -1, -1), [(w.detach(), b.detach()) for w, b in params])
        return q, q_pi


class SAC(nn.Module):
    """Actor, twin critics + targets, temperature, and (optionally) a reward model; one optimiser."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: SACConfig, reward_model: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.bf16 = resolve_precision(cfg.precision) == "bf16"  # resolved already, unless set after the build
        self.actor = Actor(obs_dim, act_dim, cfg.hidden, self.bf16)
        self.critic = TwinQ(obs_dim + act_dim, cfg.hidden, bf16=self.bf16)
        self.critic_target = TwinQ(obs_dim + act_dim, cfg.hidden, bf16=self.bf16)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_alpha)))
        self.target_entropy = -float(act_dim)
        self.reward_model = reward_model
        groups = [{"params": list(self.actor.parameters()) + list(self.critic.parameters()) + [self.log_alpha]}]
        if reward_model is not None:
            groups.append({"params": [p for p in reward_model.parameters() if p.requires_grad],
                           "lr": getattr(reward_model, "lr", cfg.lr)})
        self.opt = torch.optim.Adam(groups, lr=cfg.lr, fused=True)
        self._target_params = list(self.critic_target.parameters())
        self._online_params = list(self.critic.parameters())

    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        obs_t = torch.from_numpy(obs).unsqueeze(0)
        return self.actor.sample(obs_t, deterministic, bf16=self.bf16 and self.cfg.act_bf16)[0].numpy()

    def losses(self, obs: Tensor, act: Tensor, next_obs: Tensor, reward: Tensor, done: Tensor,
               alpha: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(critic loss, actor loss, temperature loss, log pi(a|s) of the fresh actions) on one batch, with
        the reward the TD target uses and the current temperature alpha (detached)."""
        # the actor on s' (for the TD target, no gradient) and on s (for its loss), its weights cast once
        next_act, next_logp, pi, logp = self.actor.forward_pair(next_obs, obs)
        # critic: soft TD target from the target critics and a fresh next action
        with torch.no_grad():
            next_q = self.critic_target(next_obs, next_act).min(0).values - alpha * next_logp
            target = reward + self.cfg.gamma * (1.0 - done) * next_q
        # the critic on (s, a) for the TD loss and on (s, pi(s)) for the actor's loss, which reads the critic
        # as a constant (no gradient to its weights)
        q, q_pi = self.critic.forward_pair(obs, act, pi)
        critic_loss = 0.5 * (q - target).pow(2).mean(1).sum()
        # actor: maximise min-Q minus alpha log pi
        actor_loss = (alpha * logp - q_pi.min(0).values).mean()
        # temperature: keep the policy's entropy near the target
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        return critic_loss, actor_loss, alpha_loss, logp

    def update(self, batch: Batch) -> dict:
        """One fused gradient step of critic, actor, temperature (and reward model)."""
        cfg = self.cfg
        alpha = self.log_alpha.exp().detach()
        # reward: the environment's, or the learned model's (which also returns its own loss)
        if self.reward_model is not None:
            aux_loss, reward, metrics = self.reward_model.loss_and_reward(batch)
            if not torch.isfinite(reward).all():  # never let a diverged reward model poison the critic
                raise FloatingPointError(f"{type(self.reward_model).__name__}: non-finite reward "
                                         f"(metrics: { {k: float(v) for k, v in metrics.items()} })")
        else:
            aux_loss, reward, metrics = 0.0, batch.reward, {}
        critic_loss, actor_loss, alpha_loss, logp = self.losses(batch.obs, batch.act, batch.next_obs, reward,
                                                                batch.done, alpha)
        self.opt.zero_grad(set_to_none=True)
        (critic_loss + actor_loss + alpha_loss + aux_loss).backward()
        self.opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._online_params, cfg.tau)
        metrics.update({"sac/critic_loss": critic_loss.detach(), "sac/actor_loss": actor_loss.detach(),
                        "sac/alpha": alpha, "sac/entropy": -logp.detach().mean(),
                        "sac/reward_mean": reward.mean()})
        return metrics
