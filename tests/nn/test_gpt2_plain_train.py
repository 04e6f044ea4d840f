"""The built-in GPT-2's training forward (`protege.nn.gpt2_plain.train_logits`) against transformers'
GPT2LMHeadModel: the same logits where the loss counts (bit for bit with transformers' GELU, within
one float rounding with the fused one), the same gradients and the same losses step after step."""

import json

import pytest
import torch

from protege.core.errors import UserError
from protege.data.tokens import collate, encode, step_logits
from protege.losses.mle import mle_loss
from protege.nn.gpt2_plain import train_logits, trains_plain
from protege.nn.lm import ModelConfig, build_model
from protege.nn.tokenizer import train_bpe
from protege.rl.fit import EpochSampler
from protege.systems import resolve, start
from protege.systems.lm_irl.objectives import ObjectiveConfig, objective_loss
from protege.worlds.text.tasks import TaskConfig, load_task

DEMO_MODEL = ModelConfig(n_layer=4, n_embd=128, n_head=4, context=96)  # the demo's size and shapes


@pytest.fixture(scope="module")
def demo_batches():
    """The demo's model at its initial weights and three of its training batches (arithmetic, 32 rows
    of 41-62 tokens, right-padded to each batch's longest row)."""
    data = load_task(TaskConfig(kind="arithmetic", train_size=500, eval_size=10), 0)
    tokenizer = train_bpe([e.prompt + "\n" + e.completion for e in data.train], 512)
    encoded, _ = encode(data.train, tokenizer, DEMO_MODEL.context)
    torch.manual_seed(0)
    model = build_model(DEMO_MODEL, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    sampler = EpochSampler(len(encoded), 32, 0)
    batches = [collate([encoded[i] for i in sampler.next_batch()], tokenizer.pad_token_id) for _ in range(3)]
    assert all(not b.attention_mask.all() for b in batches)  # every batch has padding to drop
    return model, batches


def plain(model, batch, fused_gelu=True):
    return train_logits(model, batch.input_ids, batch.attention_mask, batch.loss_mask, fused_gelu)


def test_logits_equal_transformers_where_the_loss_counts_and_zero_elsewhere(demo_batches):
    model, batches = demo_batches
    with torch.no_grad():
        for batch in batches:
            counted = batch.loss_mask
            reference = step_logits(model, batch)
            exact, fused = plain(model, batch, fused_gelu=False), plain(model, batch)
            assert exact.shape == reference.shape
            assert torch.equal(exact[counted], reference[counted])  # same operations, same bits
            assert torch.equal(exact[~counted], torch.zeros_like(exact[~counted]))
            assert (fused[counted] - reference[counted]).abs().max() < 2e-6  # one rounding of ~10
            assert not torch.equal(fused[counted], reference[counted])  # the fused GELU is in use


@pytest.mark.parametrize("method", ["mle", "iqlearn"])
def test_losses_equal_and_gradients_within_rounding(demo_batches, method):
    """The objectives read only counted steps, so with transformers' GELU the loss is the same bits;
    gradients differ only by the order of the weight-gradient sums (padding rows no longer in them)."""
    model, batches = demo_batches
    cfg = ObjectiveConfig(method=method, lam=0.01 if method == "iqlearn" else 0.0)
    batch = batches[0]
    results = {}
    for name, forward in {"transformers": lambda: step_logits(model, batch),
                          "exact": lambda: plain(model, batch, fused_gelu=False),
                          "fused": lambda: plain(model, batch)}.items():
        model.zero_grad(set_to_none=True)
        logits = forward()
        loss, _ = _loss(cfg, logits, batch)
        loss.backward()
        results[name] = (loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()})
    loss, grads = results["transformers"]
    assert torch.equal(results["exact"][0], loss)
    assert abs(float(results["fused"][0] - loss)) < 1e-6 * float(loss)
    for name in ("exact", "fused"):
        for key, grad in grads.items():
            other = results[name][1][key]
            assert (other - grad).abs().max() <= 1e-4 * grad.abs().max() + 1e-8, (name, key)


def _loss(cfg, logits, batch):
    """objective_loss's arithmetic on given logits (objective_loss computes its own)."""
    from protege.losses.iqlearn import iqlearn_loss
    actions = batch.input_ids[:, 1:]
    if cfg.method == "mle":
        return mle_loss(logits, actions, batch.loss_mask, per_sequence=True)
    return iqlearn_loss(logits, actions, batch.loss_mask, batch.terminal, cfg.lam, cfg.gamma,
                        per_sequence=True)


def test_objective_loss_uses_the_plain_forward_only_where_asked_and_allowed(demo_batches):
    model, batches = demo_batches
    cfg, batch = ObjectiveConfig(method="iqlearn", lam=0.01), batches[1]
    with torch.no_grad():
        reference, _ = objective_loss(cfg, model, batch)
        fast, _ = objective_loss(cfg, model, batch, plain=True)
        assert torch.equal(reference, _loss(cfg, step_logits(model, batch), batch)[0])
        assert torch.equal(fast, _loss(cfg, plain(model, batch), batch)[0])
        assert abs(float(fast - reference)) < 1e-6 * float(reference)


TRAIN = ["task.train_size=300", "task.eval_size=4", "model.n_layer=2", "model.n_embd=64", "model.n_head=2",
         "vocab_size=300", "trainer.steps=6", "trainer.batch_size=16", "trainer.log_every=1",
         "trainer.checkpoint_every=0", "eval.prompts=2", "eval.sample_prompts=1", "eval.samples=2",
         "eval.max_new_tokens=4", "threads=1"]


@pytest.mark.parametrize("recipe", ["lm_arithmetic_mle", "lm_arithmetic_iqlearn"])
def test_training_runs_give_the_same_losses_step_for_step(tmp_path, monkeypatch, recipe):
    """Two `protege run`s that differ only in model.train_forward: each step's loss and gradient norm
    agree to float rounding (the weights drift apart only by the rounding of the sums)."""
    import protege.systems.lm_irl.objectives as objectives
    calls = {"n": 0}

    def counted(*args, **kwargs):
        calls["n"] += 1
        return train_logits(*args, **kwargs)

    monkeypatch.setattr(objectives, "train_logits", counted)
    rows, plain_calls = {}, {}
    for forward in ("plain", "transformers"):
        calls["n"] = 0
        run_dir, _ = start(recipe, TRAIN + [f"name={forward}", f"runs_dir={tmp_path}",
                                            f"model.train_forward={forward}"])
        plain_calls[forward] = calls["n"]
        lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        rows[forward] = [r for r in lines if "train/loss" in r]
    steps = [r["step"] for r in rows["plain"]]
    assert steps == [r["step"] for r in rows["transformers"]] == list(range(1, 7))
    for fast, slow in zip(rows["plain"], rows["transformers"]):
        assert fast["train/loss"] == pytest.approx(slow["train/loss"], rel=1e-5)
        assert fast["train/grad_norm"] == pytest.approx(slow["train/grad_norm"], rel=1e-4)
    # each run took the forward it was told (whether the fused GELU's rounding shows in the losses
    # depends on the CPU: on some they agree bit for bit, so the losses cannot tell the runs apart)
    assert plain_calls["plain"] >= 6 and plain_calls["transformers"] == 0


def test_what_the_plain_forward_does_not_reproduce_stays_with_transformers(demo_batches):
    model, batches = demo_batches
    assert trains_plain(model)
    dropped = build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2, dropout=0.1), 50, 0, 1)
    assert not trains_plain(dropped.train()) and trains_plain(dropped.eval())
    llama = build_model(ModelConfig(arch="llama", n_layer=1, n_embd=32, n_head=2), 50, 0, 1)
    assert not trains_plain(llama)
    batch = batches[0]
    with torch.no_grad():  # another architecture with plain=True: its own forward, same loss
        loss, _ = objective_loss(ObjectiveConfig(), llama, _in_vocab(batch, 50), plain=True)
        assert torch.equal(loss, objective_loss(ObjectiveConfig(), llama, _in_vocab(batch, 50))[0])
    left_padded = batch.attention_mask.flip(1)
    with pytest.raises(ValueError, match="right-padded"):
        train_logits(model, batch.input_ids, left_padded, batch.loss_mask)


def _in_vocab(batch, vocab: int):
    return type(batch)(batch.input_ids % vocab, batch.attention_mask, batch.loss_mask, batch.terminal,
                       batch.is_expert)


def test_a_bad_train_forward_is_refused_in_one_line():
    with pytest.raises(UserError) as caught:
        resolve("lm_arithmetic_mle", ["model.train_forward=fast"])
    assert str(caught.value) == ("override model.train_forward=fast: model.train_forward must be one of "
                                 "plain, transformers, got 'fast'")
