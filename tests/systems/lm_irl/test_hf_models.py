"""Local Hugging Face models (built here, never downloaded), with and without LoRA, and the
tokenizer/model mismatch check."""

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from protege.core.errors import UserError
from protege.nn.tokenizer import train_bpe
from protege.systems import start
from protege.worlds.text.arithmetic import generate

SMALL = ["task.train_size=200", "task.eval_size=8", "trainer.steps=6", "trainer.batch_size=4",
         "trainer.checkpoint_every=0", "eval.prompts=4", "eval.sample_prompts=2", "eval.samples=2",
         "eval.max_new_tokens=8", "model.context=128"]


def save_local_model(folder, vocab_size=None):
    examples = generate(200, 0)
    tok = train_bpe([e.prompt + "\n" + e.completion for e in examples], 300)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size or len(tok), n_positions=128, n_embd=32,
                                       n_layer=1, n_head=2))
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("lora", [0, 4])
def test_local_hf_model_trains_with_and_without_lora(tmp_path, lora):
    folder = save_local_model(tmp_path / "hf")
    run_dir, summary = start("lm_arithmetic_iqlearn", SMALL + [f"model.source={folder}",
                                                               f"model.lora_r={lora}", f"runs_dir={tmp_path}"])
    assert (run_dir / "summary.json").exists() and summary["train_examples"] == 200
    if lora:
        assert (run_dir / "model" / "adapter_model.safetensors").exists()


def test_tokenizer_larger_than_the_model_is_refused(tmp_path):
    folder = save_local_model(tmp_path / "hf", vocab_size=50)
    with pytest.raises(UserError, match="do not belong together"):
        start("lm_arithmetic_mle", SMALL + [f"model.source={folder}", f"runs_dir={tmp_path}"])


def test_missing_model_directory(tmp_path):
    with pytest.raises(UserError, match="neither 'builtin' nor a local HF model"):
        start("lm_arithmetic_mle", SMALL + [f"model.source={tmp_path / 'nope'}", f"runs_dir={tmp_path}"])
