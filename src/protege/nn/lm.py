"""Language models: a small built-in decoder trained from scratch, or a local HF causal LM (+ LoRA).

The built-in model is GPT-2's architecture from `transformers` at a small size, so generation (KV
cache, sampling, top-p, beam search) and saving come from the library rather than our own code.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from protege.core.config_help import check_fields
from protege.core.errors import UserError


@dataclass
class ModelConfig:
    source: str = "builtin"
    """"builtin" (trained from scratch) or the path of a local HF AutoModelForCausalLM directory"""
    n_layer: int = 4
    """built-in model: transformer blocks"""
    n_embd: int = 128
    """built-in model: width of the residual stream (a multiple of n_head)"""
    n_head: int = 4
    """built-in model: attention heads per block"""
    context: int = 160
    """maximum tokens per sequence (prompt + completion)"""
    dropout: float = 0.0
    """built-in model: dropout on embeddings, attention and residual outputs, in [0, 1)"""
    lora_r: int = 0
    """> 0 wraps a loaded HF model with peft LoRA adapters of this rank"""
    lora_alpha: int = 16
    """LoRA scaling: the adapters' update is multiplied by lora_alpha / lora_r"""

    def __post_init__(self):
        check_fields(self, source="nonempty", n_layer=">=1", n_embd=">=1", n_head=">=1",
                     dropout="[0,1)", lora_r=">=0", lora_alpha=">=1")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd must be divisible by n_head, got n_embd={self.n_embd}, "
                             f"n_head={self.n_head}")
        if self.context < 2:  # one prompt token and one action at least
            raise ValueError(f"context must be >= 2, got {self.context}")


def build_model(cfg: ModelConfig, vocab_size: int, pad_id: int, eos_id: int):
    if cfg.source == "builtin":
        from transformers import GPT2Config, GPT2LMHeadModel
        config = GPT2Config(vocab_size=vocab_size, n_positions=cfg.context, n_embd=cfg.n_embd,
                            n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=cfg.dropout,
                            embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
                            bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=pad_id)
        return GPT2LMHeadModel(config)
    return load_hf_model(cfg)


def check_source(cfg: ModelConfig) -> None:
    if cfg.source != "builtin" and not (Path(cfg.source) / "config.json").exists():
        raise UserError(f"model.source {cfg.source!r} is neither 'builtin' nor a local HF model "
                        f"directory with config.json")


def load_hf_model(cfg: ModelConfig):
    from transformers import AutoModelForCausalLM
    check_source(cfg)
    model = AutoModelForCausalLM.from_pretrained(cfg.source, local_files_only=True,
                                                 torch_dtype=torch.float32, use_safetensors=True)
    if cfg.lora_r > 0:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    return model


def position_limit(model) -> int | None:
    """Most tokens (prompt + generated) the model can attend over: GPT-2's `n_positions`, most other
    HF models' `max_position_embeddings`; None when the config names no limit (e.g. rotary-only)."""
    config = getattr(model, "config", None)
    for key in ("n_positions", "max_position_embeddings"):
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    return None


def fit_prompt(ids: list[int], max_new_tokens: int, limit: int | None) -> tuple[list[int], int]:
    """(prompt ids, new-token budget) within the position limit: generating past it indexes beyond the
    position table. A prompt that leaves no room keeps its last `limit - 1` tokens (the end of a prompt
    is what the completion continues from)."""
    if limit is None:
        return ids, max_new_tokens
    ids = ids[-(limit - 1):]
    return ids, max(1, min(max_new_tokens, limit - len(ids)))


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
