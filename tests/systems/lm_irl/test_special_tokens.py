"""BOS as the tokenizer's own template says: a Llama-architecture tokenizer with a BOS gets it before
every prompt; the built-in BPE's ids do not move; saved tokenizers load back as the same class."""

import hashlib
import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from protege.data.text import TextExample
from protege.data.tokens import collate, encode, special_prefix
from protege.nn.lm import fit_prompt
from protege.nn.tokenizer import load_tokenizer, save_tokenizer, train_bpe
from protege.systems import start
from protege.worlds.text.arithmetic import generate
from tests.systems.lm_irl.test_hf_models import SMALL


def llama_tokenizer(texts):
    """A Llama tokenizer (Metaspace BPE, BOS template) built from a tiny BPE trained here."""
    from transformers import LlamaTokenizer
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=200, show_progress=False,
                                                       special_tokens=["<unk>", "<s>", "</s>"]))
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split()) for m in model["merges"]]
    return LlamaTokenizer(vocab=model["vocab"], merges=merges, add_bos_token=True)


@pytest.fixture(scope="module")
def examples():
    return generate(200, 0)


def test_builtin_bpe_ids_are_unchanged(examples):
    tok = train_bpe([e.prompt + "\n" + e.completion for e in examples], 512)
    assert special_prefix(tok) == []
    encoded, _ = encode(examples, tok, 160)
    ids = json.dumps([(e.ids, e.prompt_len) for e in encoded]).encode()
    assert hashlib.sha256(ids).hexdigest()[:16] == "206fe3d2ab180508"  # measured before BOS handling


def test_llama_tokenizer_gets_its_bos_before_the_prompt(examples):
    tok = llama_tokenizer([e.prompt + "\n" + e.completion for e in examples])
    bos = tok.bos_token_id
    assert special_prefix(tok) == [bos]
    encoded, _ = encode(examples[:4], tok, 160)
    for row, ex in zip(encoded, examples):
        assert row.ids[0] == bos and bos not in row.ids[1:]
        assert row.ids[-1] == tok.eos_token_id
        assert tok.decode(row.ids[:row.prompt_len], skip_special_tokens=True).strip() == ex.prompt
    batch = collate(encoded, 0)
    assert not batch.loss_mask[:, 0].any()  # BOS is never an action the model is trained to take


def test_a_cut_prompt_keeps_its_bos():
    assert fit_prompt([1] + list(range(10, 40)), 64, 24, keep=1) == ([1] + list(range(18, 40)), 1)


def test_saved_tokenizers_load_back_as_the_same_class(tmp_path, examples):
    texts = [e.prompt + "\n" + e.completion for e in examples]
    # a proper Llama tokenizer, and a byte-level BPE saved under the name LlamaTokenizer (which
    # transformers loads as a generic backend): both keep their class through a run's copy
    train_bpe(texts, 300).save_pretrained(tmp_path / "bytelevel")
    config = tmp_path / "bytelevel" / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "tokenizer_class": "LlamaTokenizer"}))
    llama_tokenizer(texts).save_pretrained(tmp_path / "llama")
    for name in ("llama", "bytelevel"):
        source = tmp_path / name
        original = load_tokenizer(source)
        save_tokenizer(original, tmp_path / f"{name}-copy", source)
        copy = load_tokenizer(tmp_path / f"{name}-copy")
        assert type(copy) is type(original)
        named = [json.loads((f / "tokenizer_config.json").read_text())["tokenizer_class"]
                 for f in (source, tmp_path / f"{name}-copy")]
        assert named[0] == named[1] == "LlamaTokenizer"
        assert copy("7 + 5 =")["input_ids"] == original("7 + 5 =")["input_ids"]


def test_llama_run_trains_with_bos(tmp_path, examples):
    from transformers import LlamaConfig, LlamaForCausalLM
    tok = llama_tokenizer([e.prompt + "\n" + e.completion for e in examples])
    folder = tmp_path / "llama"
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                 max_position_embeddings=128, bos_token_id=tok.bos_token_id,
                                 eos_token_id=tok.eos_token_id)).save_pretrained(folder)
    tok.save_pretrained(folder)
    run_dir, summary = start("lm_arithmetic_mle", SMALL + [f"model.source={folder}", "model.lora_r=4",
                                                           f"runs_dir={tmp_path}"])
    saved = load_tokenizer(run_dir / "tokenizer")
    assert type(saved).__name__ == "LlamaTokenizer" and special_prefix(saved) == [tok.bos_token_id]
    assert summary["train_examples"] == 200 and "eval/greedy_score" in summary
    assert encode([TextExample("1 + 1 =", "2")], saved, 64)[0][0].ids[0] == tok.bos_token_id
