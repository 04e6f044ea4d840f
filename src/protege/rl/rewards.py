"""Learned rewards that SAC optimises in place of the environment's: FORM and GAIL/GAIfO.

Each is an `nn.Module` with `loss_and_reward(batch) -> (loss, reward [B], metrics)`; SAC adds the
loss to its own and takes one optimiser step for everything (see `protege.rl.sac`).
The maths lives in `protege.losses.form` and `protege.losses.adversarial`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from protege.core.precision import resolve_precision
from protege.losses.adversarial import (
    adversarial_reward,
    discriminator_loss,
    gradient_penalty,
    interpolate,
)
from protege.losses.form import density_nll_loss, form_reward
from protege.nn.density import ConditionalGaussian
from protege.nn.distributions import standard_stats
from protege.nn.heads import Discriminator
from protege.rl.sac import Batch


def fit_density(model: ConditionalGaussian, obs: np.ndarray, next_obs: np.ndarray, steps: int,
                batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Fit a transition density by maximum likelihood on fixed data (FORM's offline expert model)."""
    gen = torch.Generator().manual_seed(seed)
    obs_t, next_t = torch.from_numpy(obs), torch.from_numpy(next_obs)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(obs_t), (batch_size,), generator=gen)
        loss, _ = density_nll_loss(model.log_prob(obs_t[idx], next_t[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


class FORMReward(nn.Module):
    """r = scale * clip(log p_E(o'|o) - log p_A(o'|o)); p_E frozen, p_A fitted on the agent's replay."""

    def __init__(self, expert: ConditionalGaussian, agent: ConditionalGaussian, clip: float | None = 100.0,
                 scale: float = 1.0, lr: float = 3e-4, cache_expert: bool = False):
        super().__init__()
        self.expert = expert.requires_grad_(False)
        self.agent = agent
        self.clip, self.scale, self.lr = clip, scale, lr
        self.cache_expert = cache_expert
        self._cache = torch.empty(0)  # log p_E by transition key; NaN: not computed yet

    @torch.no_grad()
    def expert_log_prob(self, batch: Batch) -> torch.Tensor:
        """log p_E(o'|o) [B]. p_E is frozen and a stored transition never changes, so with `cache_expert`
        each transition's value is computed the first time it is sampled and read back afterwards: about
        one p_E forward row per environment step instead of a full-batch forward per update."""
        if not self.cache_expert or batch.key is None:
            return self.expert.log_prob(batch.obs, batch.next_obs)
        key = batch.key
        if int(key.max()) >= len(self._cache):
            grown = torch.full((max(int(key.max()) + 1, 2 * len(self._cache)),), float("nan"))
            grown[:len(self._cache)] = self._cache
            self._cache = grown
        values = self._cache[key]
        miss = torch.isnan(values)
        if miss.any():
            values[miss] = self.expert.log_prob(batch.obs[miss], batch.next_obs[miss])
            self._cache[key[miss]] = values[miss]
        return values

    def training_state(self) -> dict:
        """The cache of log p_E is saved, not recomputed: a row computed in another batch can differ in
        the last bit, and exact resume means the same numbers."""
        return {"cache": self._cache.clone()}

    def load_training_state(self, state: dict) -> None:
        self._cache = state["cache"].clone()

    def loss_and_reward(self, batch: Batch):
        log_p_expert = self.expert_log_prob(batch)
        log_p_agent = self.agent.log_prob(batch.obs, batch.next_obs)
        loss, metrics = density_nll_loss(log_p_agent)
        reward, reward_metrics = form_reward(log_p_expert, log_p_agent.detach(), self.clip)
        return loss, self.scale * reward, metrics | reward_metrics


class GAILReward(nn.Module):
    """Discriminator between expert and agent, on (s, a) (`state_action`, GAIL) or (s, s')
    (`state_only`, GAIfO); trained one step per SAC update with an optional gradient penalty. `precision`
    (auto | fp32 | bf16, see protege.core.precision) sets the discriminator's hidden layers."""

    def __init__(self, expert_obs: np.ndarray, expert_second: np.ndarray, variant: str, hidden: int = 128,
                 gp_coef: float = 10.0, reward_kind: str = "gail", lr: float = 3e-4, seed: int = 0,
                 gp_batch: int = 0, precision: str = "fp32", gp_space: str = "raw", disc_every: int = 1):
        super().__init__()
        if variant not in ("state_action", "state_only"):
            raise ValueError(f"GAIL variant must be state_action or state_only, got {variant!r}")
        x = np.concatenate([expert_obs, expert_second], 1)
        mean, std = standard_stats(x)
        bf16 = resolve_precision(precision) == "bf16"  # auto: bf16 only where the CPU has it natively
        self.disc = Discriminator(x.shape[1], hidden, mean=mean, std=std, bf16=bf16)
        self.expert_x = torch.from_numpy(x)
        self.variant, self.gp_coef, self.reward_kind, self.lr = variant, gp_coef, reward_kind, lr
        if gp_space not in ("raw", "standardised"):
            raise ValueError(f"gp_space must be raw or standardised, got {gp_space!r}")
        self.gp_batch, self.gp_space = gp_batch, gp_space
        if disc_every < 1:
            raise ValueError(f"disc_every must be >= 1, got {disc_every}")
        self.disc_every, self._calls, self._disc_metrics = disc_every, 0, {}
        self.gen = torch.Generator().manual_seed(seed)

    def training_state(self) -> dict:
        """The generator of expert samples and interpolates, the call counter of `disc_every` and the
        metrics of the last discriminator step (reported on the calls in between)."""
        return {"gen": self.gen.get_state(), "calls": self._calls, "disc_metrics": dict(self._disc_metrics)}

    def load_training_state(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self._calls, self._disc_metrics = int(state["calls"]), dict(state["disc_metrics"])

    def _agent_x(self, batch: Batch):
        second = batch.act if self.variant == "state_action" else batch.next_obs
        return torch.cat([batch.obs, second], 1)

    def loss_and_reward(self, batch: Batch):
        """Every `disc_every`-th call (the first included) trains the discriminator; in between, the reward is
        read from the current discriminator without a loss (its parameters get no gradient, so the fused
        Adam step skips them), as DAC-style implementations update the discriminator less often than SAC."""
        self._calls += 1
        if (self._calls - 1) % self.disc_every:
            with torch.no_grad():
                reward = adversarial_reward(self.disc(self._agent_x(batch)), self.reward_kind)
            return 0.0, reward, self._disc_metrics | {"adversarial/reward": reward.mean()}
        loss, reward, metrics = self._train_step(batch)
        self._disc_metrics = {k: v for k, v in metrics.items() if k != "adversarial/reward"}
        return loss, reward, metrics

    def _train_step(self, batch: Batch):
        agent_x = self._agent_x(batch)
        expert_x = self.expert_x[torch.randint(0, len(self.expert_x), (len(agent_x),), generator=self.gen)]
        logits = self.disc(torch.cat([expert_x, agent_x]))
        expert_logits, agent_logits = logits.split(len(expert_x))
        loss, metrics = discriminator_loss(expert_logits, agent_logits)
        if self.gp_coef > 0:
            # The penalty is an expectation over interpolates, E_x~interp[(||grad D(x)|| - 1)^2]
            # (arXiv:1704.00028 Eq. 3, DAC arXiv:1809.02925 Eq. 7). The first n pairs of an i.i.d. batch are
            # an i.i.d. sample of the same interpolate distribution, so estimating it on n < B of them is
            # still unbiased, only noisier; one interpolate per batch pair is a convention, not part of
            # the objective. It saves most of the double backward, GAIL's main extra cost per step.
            n = min(self.gp_batch, len(agent_x)) if self.gp_batch > 0 else len(agent_x)
            mix = interpolate(expert_x[:n], agent_x[:n], torch.rand(n, 1, generator=self.gen))
            penalty, gp_metrics = self._gradient_penalty(mix)
            loss = loss + self.gp_coef * penalty
            metrics |= gp_metrics
        reward = adversarial_reward(agent_logits, self.reward_kind)
        return loss, reward, metrics | {"adversarial/reward": reward.mean()}

    def _gradient_penalty(self, mix: torch.Tensor):
        """The penalty on ||grad logit|| at the interpolates, w.r.t. the raw input or the standardised one the
        network sees. Why the choice: a unit gradient norm in raw units bounds how far the logit can move across
        the data, so on a task whose observations span ~0.3 (point_mass) the discriminator is held
        near D = 0.5 and its reward is nearly flat; in standardised units the same penalty allows a
        logit change of a few units across one standard deviation of the expert data, whatever the scale."""
        if self.gp_space == "raw":
            return gradient_penalty(self.disc, mix)
        return gradient_penalty(self.disc.logits_of_standardised, self.disc.standardise(mix))
