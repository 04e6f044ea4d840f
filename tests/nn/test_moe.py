"""The mixture-of-experts built-in: expert paths agree, routing bias, router terms in training."""

import pytest
import torch

from protege.losses.moe import load_balancing_loss, router_z_loss
from protege.nn.lm import ModelConfig, build_model, load_lm, save_lm
from protege.nn.moe import MoEConfig, is_moe, router_tap, routers
from protege.rl.moe import router_terms

VOCAB = 50


def tiny(implementation="sorted", **moe) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(arch="mixtral", n_layer=2, n_embd=32, n_head=4, context=32, mlp_hidden=64,
                      moe=MoEConfig(experts=4, top_k=2, implementation=implementation, **moe))
    return build_model(cfg, VOCAB, 0, 1)


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, VOCAB, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 5:] = 0
    return ids, mask


def outputs_and_grads(model):
    ids, mask = batch()
    logits = model(input_ids=ids, attention_mask=mask).logits
    (logits * mask[..., None]).square().mean().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("other", ["eager", "grouped_mm", "batched_mm"])
def test_sorted_experts_match_transformers_paths_in_outputs_and_gradients(other):
    ours, ours_grads = outputs_and_grads(tiny("sorted"))
    theirs, theirs_grads = outputs_and_grads(tiny(other))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert ours_grads.keys() == theirs_grads.keys()
    assert any("experts" in name for name in ours_grads)
    for name in ours_grads:
        torch.testing.assert_close(ours_grads[name], theirs_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_zero_bias_routes_exactly_like_mixtral_and_a_bias_moves_the_picks():
    from transformers.models.mixtral.modeling_mixtral import MixtralTopKRouter
    model = tiny()
    ours = routers(model)[0]
    plain = MixtralTopKRouter(model.config)
    plain.weight.data.copy_(ours.weight.data)
    x = torch.randn(20, 32)
    for got, want in zip(ours(x), plain(x)):
        torch.testing.assert_close(got, want)
    ours.expert_bias.copy_(torch.tensor([5.0, 5.0, 0.0, 0.0]))
    _, weights, picks = ours(x)
    assert set(picks.flatten().tolist()) == {0, 1}
    probs = torch.softmax(x @ ours.weight.data.T, dim=-1).gather(-1, picks)  # probabilities, not biased
    torch.testing.assert_close(weights, probs / probs.sum(-1, keepdim=True))


def test_router_terms_apply_without_router_logits_requested_and_exclude_padding():
    """transformers #44242: the balancing loss was skipped when output_router_logits was False."""
    model = tiny(aux_coef=0.5, z_coef=0.1)
    model.config.output_router_logits = False
    ids, mask = batch()
    model(input_ids=ids, attention_mask=mask)
    extra, metrics = router_terms(model, MoEConfig(experts=4, aux_coef=0.5, z_coef=0.1), mask)
    # reference: transformers' own router logits (asked for explicitly), our naive-tested losses
    out = model(input_ids=ids, attention_mask=mask, output_router_logits=True)
    flat = mask.reshape(-1).bool()
    layers = [(logits, logits.softmax(-1).topk(2, dim=-1).indices) for logits in out.router_logits]
    aux = sum(load_balancing_loss(lg, pk, flat) for lg, pk in layers) / 2
    z = sum(router_z_loss(lg, flat) for lg, _ in layers) / 2
    assert extra.item() == pytest.approx(0.5 * aux.item() + 0.1 * z.item(), rel=1e-5)
    assert metrics["moe/aux_loss"].item() == pytest.approx(aux.item(), rel=1e-5)
    extra.backward()
    assert all(r.weight.grad is not None and r.weight.grad.abs().sum() > 0 for r in routers(model))


def test_aux_free_updates_the_bias_outside_the_optimiser_and_only_in_training():
    model = tiny(balance="aux_free", bias_rate=0.01)
    cfg = MoEConfig(experts=4, balance="aux_free", bias_rate=0.01, z_coef=0.0)
    assert not any("expert_bias" in n for n, _ in model.named_parameters())
    ids, mask = batch()
    model.train()
    model(input_ids=ids, attention_mask=mask)
    extra, _ = router_terms(model, cfg, mask)
    assert extra.item() == 0.0  # no balancing loss (and no z-loss here)
    biases = [r.expert_bias.clone() for r in routers(model)]
    for b in biases:  # one step of +-rate (or 0 for an expert exactly at the mean load)
        assert b.abs().sum() > 0 and torch.allclose(b.abs(), (b != 0).float() * 0.01)
    model.eval()
    model(input_ids=ids, attention_mask=mask)
    router_terms(model, cfg, mask)
    assert all(torch.equal(b, r.expert_bias) for b, r in zip(biases, routers(model)))


def test_mixtral_saves_and_loads_with_its_routing_bias(tmp_path):
    model = tiny()
    routers(model)[1].expert_bias.copy_(torch.tensor([0.3, -0.1, 0.0, 0.2]))
    save_lm(model, tmp_path / "m")
    loaded = load_lm(tmp_path / "m")
    assert is_moe(loaded) and list((tmp_path / "m").glob("*.safetensors"))
    assert torch.equal(routers(loaded)[1].expert_bias, routers(model)[1].expert_bias)
    ids, mask = batch()
    model.eval()
    torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask).logits,
                               model(input_ids=ids, attention_mask=mask).logits)
    router_tap(loaded)  # hooks attach to a loaded model too
    loaded(input_ids=ids)
    assert len(router_tap(loaded).layers()) == 2


def test_bad_moe_settings_are_refused():
    with pytest.raises(ValueError, match="top_k must be <= experts"):
        MoEConfig(experts=2, top_k=3)
    with pytest.raises(ValueError, match="implementation must be one of"):
        MoEConfig(implementation="fast")
    with pytest.raises(ValueError, match="divisible by moe.top_k"):
        ModelConfig(arch="mixtral", mlp_hidden=65, moe=MoEConfig(top_k=2))
