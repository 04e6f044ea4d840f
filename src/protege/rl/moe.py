"""The router terms of a mixture-of-experts training step: the balancing loss, the z-loss and the
loss-free bias update of the built-in MoE (`protege.nn.moe`), computed from the routers' latest
forward. Training logic over a network and the router losses (`protege.losses.moe`), so it lives
with the loops, not in the network."""

import torch
import torch.distributed as dist

from protege.losses.moe import (
    expert_load,
    load_balancing_loss,
    loss_free_bias_update,
    max_violation,
    router_z_loss,
)
from protege.nn.moe import MoEConfig, router_tap, routers


def router_terms(model, cfg: MoEConfig, attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
    """(extra loss, metrics) of the routers in `model`'s latest forward, padding excluded.

    The balancing loss (balance=aux_loss) and the z-loss come from the forward hooks, so they apply
    whether or not the forward asked for router logits (transformers #44242). With balance=aux_free and
    the model in training mode, every router's bias takes one loss-free update from this batch's load
    (summed over processes when data-parallel, so every copy of the bias stays equal).
    """
    layers = router_tap(model).layers()
    if not layers:
        raise RuntimeError("no router logits: run the model forward before router_terms")
    tokens = layers[0][0].shape[0]
    mask = (torch.ones(tokens, dtype=torch.bool, device=layers[0][0].device) if attention_mask is None
            else attention_mask.reshape(-1).bool())
    if mask.shape[0] != tokens:
        raise ValueError(f"attention mask has {mask.shape[0]} tokens, the routers saw {tokens}")
    aux = torch.stack([load_balancing_loss(logits, picks, mask) for logits, picks in layers]).mean()
    z = torch.stack([router_z_loss(logits, mask) for logits, _ in layers]).mean()
    loads = [expert_load(picks.detach(), mask, logits.shape[-1]) for logits, picks in layers]
    extra = aux.new_zeros(())
    if cfg.balance == "aux_loss" and cfg.aux_coef:
        extra = extra + cfg.aux_coef * aux
    if cfg.z_coef:
        extra = extra + cfg.z_coef * z
    if cfg.balance == "aux_free" and model.training:
        _update_biases(model, loads, cfg.bias_rate)
    shares = torch.stack([load / load.sum().clamp_min(1.0) for load in loads])
    metrics = {"moe/aux_loss": aux.detach(), "moe/z_loss": z.detach(),
               "moe/max_violation": torch.stack([max_violation(load) for load in loads]).mean(),
               "moe/min_expert_share": shares.min(-1).values.mean(),
               "moe/max_expert_share": shares.max(-1).values.mean()}
    return extra, metrics


@torch.no_grad()
def _update_biases(model, loads: list[torch.Tensor], rate: float) -> None:
    summed = torch.stack(loads)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(summed)
    for router, load in zip(routers(model), summed):
        router.expert_bias.copy_(loss_free_bias_update(router.expert_bias, load, rate))
