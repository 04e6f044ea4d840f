"""Router objectives of one sparse mixture-of-experts layer: load balancing, z-loss, loss-free bias.

Every function takes one layer's router logits (N tokens x E experts), its top-k picks (N x k) and a
token mask (N,) that is false at padding: padding never counts toward a load or a loss (transformers
#28505 counted it). A model's loss averages the per-layer values: computing each layer alone keeps one
layer's imbalance from cancelling another's (the per-layer form of Switch, transformers #28255).
"""

import torch
from torch import Tensor


def expert_load(picks: Tensor, mask: Tensor, num_experts: int) -> Tensor:
    """c_i = number of (token, slot) assignments to expert i over the unmasked tokens; shape (E,)."""
    weights = mask.to(torch.float32)[:, None].expand_as(picks).reshape(-1)
    return torch.zeros(num_experts, device=picks.device).index_add_(0, picks.reshape(-1), weights)


def load_balancing_loss(router_logits: Tensor, picks: Tensor, mask: Tensor) -> Tensor:
    """Switch Transformer's auxiliary load-balancing loss of one layer (arXiv:2101.03961, eqs. 4-6), in
    its top-k form (Mixtral, arXiv:2401.04088; MegaBlocks, arXiv:2211.15841), over unmasked tokens:

        f_i = c_i / (k T)                    share of the k*T assignments that go to expert i
        P_i = (1/T) sum_t softmax(x_t)_i     mean router probability of expert i
        L   = E * sum_i f_i * P_i

    T = number of unmasked tokens. L = 1 for perfectly uniform routing, E when every token goes to one
    expert with probability 1; gradients flow through P only (f counts discrete picks).
    """
    num_experts, top_k = router_logits.shape[-1], picks.shape[-1]
    keep = mask.to(torch.float32)
    tokens = keep.sum().clamp_min(1.0)
    probs = torch.softmax(router_logits.float(), dim=-1)
    share = expert_load(picks, mask, num_experts) / (top_k * tokens)
    mean_prob = (probs * keep[:, None]).sum(0) / tokens
    return num_experts * (share * mean_prob).sum()


def router_z_loss(router_logits: Tensor, mask: Tensor) -> Tensor:
    """ST-MoE router z-loss (arXiv:2202.08906, eq. 5) over unmasked tokens:

        L_z = (1/T) sum_t ( log sum_j exp(x_tj) )^2

    It keeps router logits small, which keeps the routing softmax numerically stable.
    """
    keep = mask.to(torch.float32)
    z = torch.logsumexp(router_logits.float(), dim=-1)
    return (z.square() * keep).sum() / keep.sum().clamp_min(1.0)


def loss_free_bias_update(bias: Tensor, load: Tensor, rate: float) -> Tensor:
    """Auxiliary-loss-free balancing (arXiv:2408.15664, Algorithm 1): after each training batch,

        e_i = mean_j(c_j) - c_i,      b_i <- b_i + u * sign(e_i)

    so under-loaded experts gain routing score and over-loaded ones lose it. The bias only changes
    which experts are picked (top-k of s + b); it is not trained by the optimiser. Returns the new bias.
    """
    return bias + rate * torch.sign(load.float().mean() - load.float())


def max_violation(load: Tensor) -> Tensor:
    """MaxVio = (max_i c_i - mean c) / mean c (arXiv:2408.15664, eq. 4): 0 is perfect balance."""
    mean = load.float().mean()
    return (load.float().max() - mean) / mean.clamp_min(1e-9)
