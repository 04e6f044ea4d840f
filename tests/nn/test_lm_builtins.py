"""The rotary (llama) built-in beside GPT-2: trains, saves/loads through safetensors, samples."""

import torch

from protege.nn.lm import ModelConfig, build_model, generate, load_lm, save_lm, with_rope_scaling


def test_default_builtin_is_still_gpt2():
    model = build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2, context=16), 40, 0, 1)
    assert model.config.model_type == "gpt2" and model.config.n_positions == 16


def test_llama_builtin_trains_saves_loads_and_samples(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="llama", n_layer=2, n_embd=32, n_head=4, context=32), 40, 0, 1)
    assert model.config.model_type == "llama" and model.config.intermediate_size == 128
    ids = torch.arange(2, 34).reshape(2, 16)  # two fixed sequences to memorise
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    save_lm(model, tmp_path / "llama")
    assert (tmp_path / "llama" / "model.safetensors").is_file()
    loaded = load_lm(tmp_path / "llama")
    model.eval()
    torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    prompt = ids[:, :4]
    out = generate(loaded, input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6,
                   do_sample=False)
    assert torch.equal(out[:, 4:], ids[:, 4:10])  # greedy sampling continues the memorised sequence
    sampled = generate(loaded, input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6,
                       do_sample=True, top_p=0.9)
    assert sampled.shape == (2, 10)


def test_rope_scaling_copies_keep_weights_and_change_positions_only_past_the_trained_length():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="llama", n_layer=1, n_embd=32, n_head=4, context=16), 40, 0, 1).eval()
    short, long = torch.randint(2, 40, (1, 16)), torch.randint(2, 40, (1, 64))
    dynamic = with_rope_scaling(model, "dynamic", 4.0, 16)
    linear = with_rope_scaling(model, "linear", 4.0, 16)
    torch.testing.assert_close(dynamic(input_ids=short).logits, model(input_ids=short).logits)
    assert not torch.allclose(linear(input_ids=short).logits, model(input_ids=short).logits)
    assert not torch.allclose(dynamic(input_ids=long).logits, model(input_ids=long).logits)
    assert with_rope_scaling(model, "yarn", 4.0, 16).config.rope_parameters["rope_type"] == "yarn"
