"""Tokenizers: a byte-level BPE trained on the task's own text (built-in tasks), or a model's own.

The BPE is trained with Hugging Face `tokenizers` and wrapped as a `PreTrainedTokenizerFast`, so the
run directory holds a standard `tokenizer.json` any HF tool can read back.
"""

from pathlib import Path

from protege.core.errors import UserError

PAD, EOS = "<pad>", "<eos>"


def train_bpe(texts: list[str], vocab_size: int = 512):
    """Byte-level BPE (GPT-2 pre-tokenisation keeps numbers whole, so frequent ones become one token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS)


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a tokenizer from {path}: {e}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def save_tokenizer(tokenizer, folder: str | Path, source: str | Path | None = None) -> None:
    """Save a tokenizer (atomically) so it loads back as the class its source loads as. Saving writes
    the class of the object in hand; where transformers had loaded the source's named class as another
    (e.g. `TokenizersBackend` for a byte-level tokenizer.json under `LlamaTokenizer`), the copy keeps
    the source's name, so loading the copy resolves exactly as loading the source did."""
    import json

    from protege.core.runs import atomic_path
    with atomic_path(Path(folder), replace_folder=True) as tmp:
        tokenizer.save_pretrained(str(tmp))
        source_config = Path(source) / "tokenizer_config.json" if source else None
        if source_config and source_config.is_file():
            named = json.loads(source_config.read_text()).get("tokenizer_class")
            config = json.loads((tmp / "tokenizer_config.json").read_text())
            if named and config.get("tokenizer_class") != named:
                config["tokenizer_class"] = named
                (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def check_matches(tokenizer, model) -> None:
    """Refuse a tokenizer whose ids fall outside the model's embedding table."""
    size = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > size:
        raise UserError(f"tokenizer has {len(tokenizer)} tokens but the model's embedding has {size}: "
                        f"they do not belong together")
