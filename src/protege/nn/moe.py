"""Sparse mixture-of-experts decoder: transformers' Mixtral at a tiny size, plus what it lacks.

Mixtral's own classes give the attention, the experts (weights stored as 3-D tensors) and generation.
What is added here, and why:
- `BiasedTopKRouter`: Mixtral's router with a per-expert bias that only shifts which experts are
  picked (auxiliary-loss-free balancing, arXiv:2408.15664); the gate weights stay the softmax
  probabilities. With a zero bias it routes exactly like `MixtralTopKRouter`.
- `RouterTap`: forward hooks that keep every layer's router logits and picks of the latest forward,
  so the training loss (`protege.rl.moe.router_terms`) can apply the balancing loss whether or not
  the caller asked the model for router logits (transformers skips it then,
  huggingface/transformers#44242).
- `sorted_experts_forward`: an experts forward registered in transformers' `ExpertsInterface` as
  "sorted". transformers' eager path builds a one-hot mask over (experts x top-k x tokens) and
  searches it once per expert; its batched_mm path gathers one weight matrix per token (slow on CPU).
  Sorting the (token, slot) pairs by expert once and cutting them into contiguous slices does the
  same maths with one gather and one matmul pair per expert.
"""

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from protege.core.config_help import check_fields

EXPERTS_IMPLEMENTATIONS = ("sorted", "eager", "grouped_mm", "batched_mm")


@dataclass
class MoEConfig:
    experts: int = 8
    """experts per MoE layer (model.arch=mixtral)"""
    top_k: int = 2
    """experts each token is sent to; each expert's hidden width is model.mlp_hidden / top_k, so the
    active parameters per token equal a dense llama model with the same mlp_hidden"""
    balance: Literal["aux_loss", "aux_free", "none"] = "aux_loss"
    """aux_loss: Switch load-balancing loss (arXiv:2101.03961) over non-padding tokens; aux_free: a
    per-expert routing bias updated outside the optimiser (arXiv:2408.15664); none: no balancing"""
    aux_coef: float = 0.01
    """weight of the load-balancing loss (balance=aux_loss)"""
    z_coef: float = 0.001
    """weight of the router z-loss (arXiv:2202.08906); 0 disables it"""
    bias_rate: float = 0.001
    """balance=aux_free: bias += bias_rate * sign(mean load - load) after every training batch"""
    implementation: Literal["sorted", "eager", "grouped_mm", "batched_mm"] = "sorted"
    """how the experts run: sorted (this project's, see protege.nn.moe) or one of transformers' own"""

    def __post_init__(self):
        check_fields(self, experts=">=1", top_k=">=1", aux_coef=">=0", z_coef=">=0", bias_rate=">=0")
        if self.top_k > self.experts:
            raise ValueError(f"top_k must be <= experts, got top_k={self.top_k}, experts={self.experts}")
        if self.implementation not in EXPERTS_IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {', '.join(EXPERTS_IMPLEMENTATIONS)}, "
                             f"got {self.implementation!r}")


def sorted_experts_forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                           top_k_weights: torch.Tensor) -> torch.Tensor:
    """Mixtral's experts (SwiGLU, weights (E, 2I, H) and (E, H, I)) over (token, slot) pairs sorted by
    expert. Same maths as transformers' eager loop: out_t = sum_slot w_t,slot * expert_e(x_t)."""
    top_k = top_k_index.shape[-1]
    flat = top_k_index.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=self.num_experts).tolist()
    token_of = order // top_k
    pieces = []
    for expert, rows in enumerate(hidden_states[token_of].split(counts)):
        if rows.shape[0] == 0:
            continue
        gate, up = F.linear(rows, self.gate_up_proj[expert]).chunk(2, dim=-1)
        pieces.append(F.linear(self.act_fn(gate) * up, self.down_proj[expert]))
    expert_out = torch.cat(pieces) * top_k_weights.reshape(-1)[order, None].to(hidden_states.dtype)
    return torch.zeros_like(hidden_states).index_add_(0, token_of, expert_out)


_CLASSES: dict = {}


def register_sorted_experts() -> None:
    """Make "sorted" a valid `experts_implementation` of transformers' MoE models."""
    from transformers.integrations.moe import ExpertsInterface
    ExpertsInterface.register("sorted", sorted_experts_forward)


def biased_mixtral_class():
    """`MixtralForCausalLM` whose routers carry a routing bias; made on first use (transformers is
    imported only when a model is needed) and cached, so saved models load back into the same class."""
    if "model" in _CLASSES:
        return _CLASSES["model"]
    register_sorted_experts()
    from transformers import MixtralForCausalLM
    from transformers.models.mixtral.modeling_mixtral import MixtralTopKRouter

    class BiasedTopKRouter(MixtralTopKRouter):
        """Top-k over softmax(logits) + bias; the gate weights are the picked probabilities (not the
        biased scores), renormalised over the k picks as Mixtral does (arXiv:2408.15664, eq. 3)."""

        def __init__(self, config):
            super().__init__(config)
            self.register_buffer("expert_bias", torch.zeros(self.num_experts))

        def forward(self, hidden_states):
            hidden_states = hidden_states.reshape(-1, self.hidden_dim)
            router_logits = F.linear(hidden_states, self.weight)
            probs = torch.softmax(router_logits.float(), dim=-1)
            _, indices = torch.topk(probs + self.expert_bias, self.top_k, dim=-1)
            weights = probs.gather(-1, indices)
            return router_logits, weights / weights.sum(dim=-1, keepdim=True), indices

    class BiasedMixtralForCausalLM(MixtralForCausalLM):
        """Mixtral with `BiasedTopKRouter`s: loads Mixtral checkpoints' layout, plus the bias."""
        # transformers decides whether a class may switch experts implementation by searching its
        # module's source for Mixtral's decorator; the experts here are Mixtral's own, so it may
        _can_set_experts_implementation_cached_value = True

        def __init__(self, config):
            super().__init__(config)
            for layer in self.model.layers:
                layer.mlp.gate = BiasedTopKRouter(config)
            self.post_init()
            router_tap(self)  # hooks from the start, so the first forward is kept too

    _CLASSES.update(model=BiasedMixtralForCausalLM, router=BiasedTopKRouter)
    return BiasedMixtralForCausalLM


def routers(model) -> list:
    return [layer.mlp.gate for layer in model.model.layers]


class RouterTap:
    """Keeps each router's (logits, picked experts) of the latest forward, through forward hooks."""

    def __init__(self, model):
        self.logits: dict[int, torch.Tensor] = {}
        self.picks: dict[int, torch.Tensor] = {}
        for index, router in enumerate(routers(model)):
            router.register_forward_hook(self._keeper(index))

    def _keeper(self, index: int):
        def keep(module, inputs, outputs):
            self.logits[index], _, self.picks[index] = outputs
        return keep

    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(router logits (tokens, E), picked experts (tokens, k))] per layer, in layer order."""
        return [(self.logits[i], self.picks[i]) for i in sorted(self.logits)]


def router_tap(model) -> RouterTap:
    """The model's tap, made on first use (hooks are not saved with the model, so one per instance)."""
    tap = getattr(model, "_router_tap", None)
    if tap is None:
        tap = RouterTap(model)
        object.__setattr__(model, "_router_tap", tap)
    return tap


ROUTER_BIAS_KEY = "protege_router_bias"
"""set in a built-in mixtral's config: its routers carry a bias (see `biased_mixtral_class`)"""


def is_moe(model) -> bool:
    """A built-in mixture-of-experts model (routers with a bias, see `biased_mixtral_class`)."""
    return bool(getattr(getattr(model, "config", None), ROUTER_BIAS_KEY, False))
