"""Tokenizers: a byte-level BPE trained on the task's own text (built-in tasks), or a model's own.

The BPE is trained with Hugging Face `tokenizers` and wrapped as a `PreTrainedTokenizerFast`, so the
run directory holds a standard `tokenizer.json` any HF tool can read back. For decoding and scoring
only, `load_inference_tokenizer` reads such a folder with `tokenizers` alone (see `BackendTokenizer`).
"""

import json
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


GENERIC_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
"""tokenizer_config.json classes that are transformers' plain wrapper of a tokenizer.json"""
PLAIN_CONFIG_KEYS = {"backend", "tokenizer_class", "model_max_length", "bos_token", "eos_token", "pad_token",
                     "unk_token", "clean_up_tokenization_spaces", "padding_side", "truncation_side",
                     "model_input_names"}
"""keys whose values `BackendTokenizer` reproduces (or that change nothing it does); any other key
(add_bos_token, add_prefix_space, split_special_tokens, added_tokens_decoder, ...) makes transformers
edit the backend on loading, so such a folder loads through transformers"""
SPECIAL_NAMES = ("bos_token", "eos_token", "pad_token", "unk_token")
TRANSFORMERS_PATCHES_ABOVE = 100_000
"""transformers rewrites the pre-tokenizer of vocabularies larger than this (a Mistral regex fix)"""


def load_inference_tokenizer(path: str | Path):
    """The tokenizer in `path` for decoding and scoring: a `BackendTokenizer` when the folder is a
    plain tokenizer.json that transformers would load unchanged (the built-in BPE is), else
    `load_tokenizer`'s. Why: importing transformers' tokenizer classes costs about a CPU second of
    every fresh `eval lm` / `lm sample` (more than evaluating a small model); `tokenizers` alone
    costs almost nothing."""
    return _backend_tokenizer(Path(path)) or load_tokenizer(path)


def _backend_tokenizer(path: Path) -> "BackendTokenizer | None":
    """None unless loading through transformers would leave tokenizer.json exactly as it is: a
    generic class, no option that edits the backend, no truncation or padding, and every named
    special token already an added special token (else transformers adds it, changing ids)."""
    try:
        config = json.loads((path / "tokenizer_config.json").read_text())
        from tokenizers import Tokenizer
        backend = Tokenizer.from_file(str(path / "tokenizer.json"))
    except Exception:  # noqa: BLE001 - tokenizers raises a bare Exception on a broken file
        return None  # missing or unreadable: transformers' loading explains
    if not isinstance(config, dict) or config.get("tokenizer_class") not in GENERIC_CLASSES \
            or set(config) - PLAIN_CONFIG_KEYS or config.get("clean_up_tokenization_spaces") \
            or backend.truncation is not None or backend.padding is not None \
            or backend.get_vocab_size() > TRANSFORMERS_PATCHES_ABOVE:
        return None
    names = {name: config.get(name) for name in SPECIAL_NAMES}
    added = {t.content: t for t in backend.get_added_tokens_decoder().values()}
    for token in names.values():
        if token is None:
            continue
        entry = added.get(token) if isinstance(token, str) else None
        if entry is None or not entry.special or entry.normalized or entry.lstrip or entry.rstrip \
                or entry.single_word:
            return None
    return BackendTokenizer(backend, names)


class BackendTokenizer:
    """What decoding and scoring call of a transformers tokenizer (`tok(text, add_special_tokens=)`,
    `decode`, `batch_decode`, the special tokens and their ids, `len`), on a `tokenizers.Tokenizer`
    that transformers would wrap unchanged: the same calls transformers makes on it, so the same ids
    and texts (tested against AutoTokenizer). Encoding with specials applies the tokenizer.json's
    own template (a BOS where it has one); a missing pad token is the EOS, as `load_tokenizer` sets."""

    is_fast = True

    def __init__(self, backend, special_tokens: dict[str, str | None]):
        self.backend = backend
        self.bos_token, self.eos_token = special_tokens["bos_token"], special_tokens["eos_token"]
        self.unk_token = special_tokens["unk_token"]
        self.pad_token = special_tokens["pad_token"] or self.eos_token

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    @property
    def bos_token_id(self) -> int | None:
        return self._id(self.bos_token)

    @property
    def eos_token_id(self) -> int | None:
        return self._id(self.eos_token)

    @property
    def pad_token_id(self) -> int | None:
        return self._id(self.pad_token)

    @property
    def unk_token_id(self) -> int | None:
        return self._id(self.unk_token)

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        if not isinstance(text, str):
            raise TypeError(f"BackendTokenizer encodes one text at a time, got {type(text).__name__}")
        return {"input_ids": self.backend.encode(text, add_special_tokens=add_special_tokens).ids}

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def batch_decode(self, rows: list[list[int]], skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(row, skip_special_tokens) for row in rows]


def save_tokenizer(tokenizer, folder: str | Path, source: str | Path | None = None) -> None:
    """Save a tokenizer (atomically) so it loads back as the class its source loads as. Saving writes
    the class of the object in hand; where transformers had loaded the source's named class as another
    (e.g. `TokenizersBackend` for a byte-level tokenizer.json under `LlamaTokenizer`), the copy keeps
    the source's name, so loading the copy resolves exactly as loading the source did."""
    import json

    from protege.core.atomic import atomic_path
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
