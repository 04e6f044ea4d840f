"""Held-out NLL and entropy along the reference completions (`evaluate.reference_fit`) against a naive
reference: one example at a time, unpadded, one token at a time, summed in Python."""

import math

import pytest
import torch

from protege.data.text import TextExample
from protege.data.tokens import prompt_ids
from protege.nn.lm import ModelConfig, build_model
from protege.nn.tokenizer import train_bpe
from protege.systems.lm_irl.evaluate import reference_fit
from protege.worlds.text.arithmetic import generate as arithmetic


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe([e.prompt + "\n" + e.completion for e in arithmetic(200, 0)], 300)


def tiny(tokenizer, seed: int = 1):
    torch.manual_seed(seed)
    return build_model(ModelConfig(n_layer=2, n_embd=32, n_head=2, context=160), len(tokenizer),
                       tokenizer.pad_token_id, tokenizer.eos_token_id).eval()


def naive_fit(model, tokenizer, examples: list[TextExample]) -> tuple[float, float]:
    """Sum over every completion token (and the EOS) of -log p and of the entropy, divided by their
    count; each example alone, each next-token distribution from its own prefix."""
    nll, entropy, count = 0.0, 0.0, 0
    for e in examples:
        prompt = prompt_ids(tokenizer, e.prompt)
        target = tokenizer(e.completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for t, token in enumerate(target):
            prefix = torch.tensor([prompt + target[:t]])
            with torch.no_grad():
                probs = torch.softmax(model(input_ids=prefix).logits[0, -1].double(), -1).tolist()
            nll -= math.log(probs[token])
            entropy -= sum(p * math.log(p) for p in probs if p > 0)
            count += 1
    return nll / count, entropy / count


def test_reference_fit_matches_a_naive_token_by_token_reference(tokenizer):
    examples = arithmetic(7, 5)  # completions of several lengths: batches pad them
    from protege.data.tokens import encode
    assert encode(examples, tokenizer, 160)[1] == 0  # none cut: the naive reference sees them whole
    model = tiny(tokenizer)
    nll, entropy = reference_fit(model, tokenizer, examples, context=160, batch_size=3)
    want_nll, want_entropy = naive_fit(model, tokenizer, examples)
    assert nll == pytest.approx(want_nll, rel=1e-4)
    assert entropy == pytest.approx(want_entropy, rel=1e-4)
    # the batch layout does not change it (sorted, padded batches of any size)
    assert reference_fit(model, tokenizer, examples, 160, batch_size=64) == pytest.approx((nll, entropy), rel=1e-5)
    # an untrained model is near uniform over the vocabulary; a model pushed towards the references
    # (a few steps of MLE on them) has a lower NLL on them and a lower entropy along them
    assert entropy == pytest.approx(math.log(len(tokenizer)), rel=0.05)
    fitted = overfit(tiny(tokenizer), tokenizer, examples)
    after = reference_fit(fitted, tokenizer, examples, 160)
    assert after[0] < nll - 1 and after[1] < entropy - 1


def overfit(model, tokenizer, examples):
    from protege.data.tokens import collate, encode, step_logits
    batch = collate(encode(examples, tokenizer, 160)[0], tokenizer.pad_token_id)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        logits = step_logits(model, batch)
        loss = torch.nn.functional.cross_entropy(logits[batch.loss_mask], batch.input_ids[:, 1:][batch.loss_mask])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()
