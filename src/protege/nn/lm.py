"""Language models: a small built-in decoder trained from scratch, or a local HF causal LM (+ LoRA).

The built-in models are `transformers` architectures at a small size, so generation (KV cache,
sampling, top-p, beam search) and saving come from the library rather than our own code: GPT-2
(learned positions), Llama (rotary positions, RMSNorm, SwiGLU) and Mixtral (Llama's attention with a
sparse mixture-of-experts MLP, see protege.nn.moe).
"""

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.runs import added_config_key
from protege.nn.moe import ROUTER_BIAS_KEY, MoEConfig

ARCHS = ("gpt2", "llama", "mixtral")
ROPE_SCALINGS = ("none", "linear", "dynamic", "yarn")
TRAIN_FORWARDS = ("plain", "transformers")


# runs saved before train_forward existed trained through transformers' forward: they resume as such
added_config_key("model.train_forward", "transformers")


@dataclass
class ModelConfig:
    source: str = "builtin"
    """"builtin" (trained from scratch) or the path of a local HF AutoModelForCausalLM directory"""
    arch: Literal["gpt2", "llama", "mixtral"] = "gpt2"
    """built-in model: gpt2 (learned positions), llama (rotary positions) or mixtral (llama with a
    sparse mixture-of-experts MLP, configured by model.moe)"""
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
    mlp_hidden: int = 0
    """llama/mixtral: hidden width of the SwiGLU MLP (mixtral: summed over the top_k active experts);
    0 means 4 * n_embd"""
    rope_theta: float = 10000.0
    """llama/mixtral: base of the rotary position frequencies"""
    moe: MoEConfig = field(default_factory=MoEConfig)
    """mixtral: experts, routing and load balancing"""
    train_forward: Literal["plain", "transformers"] = "plain"
    """built-in GPT-2 training forward: plain (protege.nn.gpt2_plain.train_logits: real tokens only, the
    loss's steps only at the output, fused GELU; the same logits within one float rounding, ~1.4x
    faster a step) or transformers (the model's own forward over the padded batch); anything plain
    does not reproduce (other architectures, LoRA, dropout, several processes) uses transformers"""

    def __post_init__(self):
        check_fields(self, source="nonempty", n_layer=">=1", n_embd=">=1", n_head=">=1",
                     dropout="[0,1)", lora_r=">=0", lora_alpha=">=1", mlp_hidden=">=0", rope_theta=">0")
        if self.train_forward not in TRAIN_FORWARDS:
            raise ValueError(f"train_forward must be one of {', '.join(TRAIN_FORWARDS)}, "
                             f"got {self.train_forward!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if isinstance(self.moe, dict):
            self.moe = MoEConfig(**self.moe)
        if self.arch == "mixtral" and self.hidden_width() % self.moe.top_k:
            raise ValueError(f"mlp_hidden ({self.hidden_width()}) must be divisible by moe.top_k "
                             f"({self.moe.top_k}): each active expert gets an equal share")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd must be divisible by n_head, got n_embd={self.n_embd}, "
                             f"n_head={self.n_head}")
        if self.context < 2:  # one prompt token and one action at least
            raise ValueError(f"context must be >= 2, got {self.context}")


    def hidden_width(self) -> int:
        return self.mlp_hidden or 4 * self.n_embd


def build_model(cfg: ModelConfig, vocab_size: int, pad_id: int, eos_id: int):
    if cfg.source != "builtin":
        return load_hf_model(cfg)
    if cfg.arch == "llama":
        return _build_llama(cfg, vocab_size, pad_id, eos_id)
    if cfg.arch == "mixtral":
        return _build_mixtral(cfg, vocab_size, pad_id, eos_id)
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(vocab_size=vocab_size, n_positions=cfg.context, n_embd=cfg.n_embd,
                        n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=cfg.dropout,
                        embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
                        bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    return GPT2LMHeadModel(config)


def _rotary_settings(cfg: ModelConfig, vocab_size: int, pad_id: int, eos_id: int) -> dict:
    """What the llama and mixtral built-ins share: sizes, rotary positions, special tokens."""
    return dict(vocab_size=vocab_size, hidden_size=cfg.n_embd, num_hidden_layers=cfg.n_layer,
                num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_head, head_dim=cfg.n_embd // cfg.n_head,
                max_position_embeddings=cfg.context, attention_dropout=cfg.dropout,
                rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
                bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=pad_id, tie_word_embeddings=False)


def _build_llama(cfg: ModelConfig, vocab_size: int, pad_id: int, eos_id: int):
    from transformers import LlamaConfig, LlamaForCausalLM
    return LlamaForCausalLM(LlamaConfig(intermediate_size=cfg.hidden_width(),
                                        **_rotary_settings(cfg, vocab_size, pad_id, eos_id)))


def _build_mixtral(cfg: ModelConfig, vocab_size: int, pad_id: int, eos_id: int):
    from transformers import MixtralConfig

    from protege.nn.moe import biased_mixtral_class
    config = MixtralConfig(intermediate_size=cfg.hidden_width() // cfg.moe.top_k,
                           num_local_experts=cfg.moe.experts, num_experts_per_tok=cfg.moe.top_k,
                           router_aux_loss_coef=cfg.moe.aux_coef,
                           **_rotary_settings(cfg, vocab_size, pad_id, eos_id))
    setattr(config, ROUTER_BIAS_KEY, True)
    model = biased_mixtral_class()(config)
    model.set_experts_implementation(cfg.moe.implementation)
    return model


def with_rope_scaling(model, scaling: str, factor: float, trained_length: int):
    """A copy of a rotary built-in whose positions are rescaled by transformers' `rope_parameters`
    (linear: positions / factor, arXiv:2306.15595; dynamic: NTK-aware base growth past the trained
    length; yarn: arXiv:2309.00071); the weights are shared values, nothing is retrained."""
    if scaling not in ROPE_SCALINGS:
        raise ValueError(f"scaling must be one of {', '.join(ROPE_SCALINGS)}, got {scaling!r}")
    config = model.config.__class__.from_dict(model.config.to_dict())
    theta = model.config.rope_parameters["rope_theta"]
    if scaling == "none":
        config.rope_parameters = {"rope_type": "default", "rope_theta": theta}
        config.max_position_embeddings = int(trained_length * factor)
    elif scaling == "dynamic":  # grows the base once a sequence passes max_position_embeddings
        config.rope_parameters = {"rope_type": "dynamic", "rope_theta": theta, "factor": factor}
        config.max_position_embeddings = trained_length
    else:
        config.rope_parameters = {"rope_type": scaling, "rope_theta": theta, "factor": factor,
                                  "original_max_position_embeddings": trained_length}
        config.max_position_embeddings = int(trained_length * factor)
    copy = type(model)(config)
    copy.load_state_dict(model.state_dict())
    return copy.eval()


def check_source(cfg: ModelConfig) -> None:
    if cfg.source != "builtin" and not (Path(cfg.source) / "config.json").exists():
        raise UserError(f"model.source {cfg.source!r} is neither 'builtin' nor a local HF model "
                        f"directory with config.json")


def load_hf_model(cfg: ModelConfig):
    check_source(cfg)
    model = _load_pretrained(cfg.source)
    if cfg.lora_r > 0:
        from peft import LoraConfig, get_peft_model
        with _quiet_peft():
            model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                     target_modules="all-linear", task_type="CAUSAL_LM",
                                                     fan_in_fan_out=_uses_conv1d(model)))
    return model


def _load_pretrained(folder: str | Path):
    from transformers import AutoConfig, AutoModelForCausalLM
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    if getattr(config, ROUTER_BIAS_KEY, False):
        return _load_biased_mixtral(Path(folder), config)
    # `dtype` (not the deprecated `torch_dtype`): weights in float32 whatever the checkpoint holds
    return AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32,
                                                use_safetensors=True)


def _load_biased_mixtral(folder: Path, config):
    """A built-in mixtral: Mixtral's own loading (which maps the saved layout onto its classes) into
    the class whose routers hold the routing bias, so the bias loads with the weights."""
    from protege.nn.moe import biased_mixtral_class
    return biased_mixtral_class().from_pretrained(str(folder), local_files_only=True, dtype=torch.float32,
                                                  use_safetensors=True, config=config)


@contextmanager
def _quiet_peft():
    """peft reads transformers' deprecated `is_gradient_checkpointing` when wrapping a model: a
    FutureWarning about peft's own code that a user can do nothing about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


class _DropPaddingWarning(logging.Filter):
    def filter(self, record):
        return "passing in an `attention_mask`" not in record.getMessage()


def generate(model, **kwargs):
    """`model.generate(**kwargs)` (with the attention mask in kwargs). During decoding transformers
    drops an all-ones mask as redundant, then warns on seeing the pad token that finished sequences
    emit that no mask was passed; that warning is false here, so it is filtered for this call only."""
    if "attention_mask" not in kwargs:
        raise ValueError("generate needs the attention mask")
    logger, drop = logging.getLogger("transformers.modeling_utils"), _DropPaddingWarning()
    logger.addFilter(drop)
    try:
        return model.generate(**kwargs)
    finally:
        logger.removeFilter(drop)


def _uses_conv1d(model) -> bool:
    """GPT-2-style models store linear layers as transposed `Conv1D`; LoRA must know (fan_in_fan_out),
    else peft warns and flips the flag itself."""
    from transformers.pytorch_utils import Conv1D
    return any(isinstance(m, Conv1D) for m in model.modules())


# saving and loading a trained model: full weights, or an adapter over a recorded base ---------------
BASE_RECORD = "protege-base.json"
"""beside an adapter: which base model it was trained on, and how to tell if that base changed"""


def _base_fingerprint(base: Path) -> dict:
    from protege.data.manifest import file_sha256
    weights = sorted(p for p in base.iterdir() if p.suffix == ".safetensors")
    return {"config_sha256": file_sha256(base / "config.json"),
            "weights_bytes": {p.name: p.stat().st_size for p in weights}}


def save_lm(model, folder: Path, base: str | None = None) -> None:
    """Write a trained model to `folder` atomically: full weights, or for an adapter-wrapped (peft)
    model the adapter alone plus a record of its base model (path and fingerprint)."""
    import json

    from protege.core.atomic import atomic_path
    with atomic_path(Path(folder), replace_folder=True) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if is_adapter(model):
            base = Path(base).resolve()
            record = {"base": str(base), "adapter": type(model.peft_config["default"]).__name__,
                      **_base_fingerprint(base)}
            (tmp / BASE_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def is_adapter(model) -> bool:
    return hasattr(model, "peft_config")


def load_lm(folder: Path):
    """A model saved by `save_lm`: the full model, or its recorded base with the adapter on top.
    Raises `UserError` (one line) when the folder holds neither, or the base is missing or changed."""
    import json
    folder = Path(folder)
    if (folder / "adapter_config.json").exists():
        record_path = folder / BASE_RECORD
        if not record_path.is_file():
            raise UserError(f"{folder}: an adapter without {BASE_RECORD}, so its base model is unknown")
        record = json.loads(record_path.read_text())
        base = Path(record["base"])
        if not (base / "config.json").is_file():
            raise UserError(f"{folder}: its base model {base} is missing (the adapter needs it; restore "
                            f"the base there)")
        found = _base_fingerprint(base)
        for key in ("config_sha256", "weights_bytes"):
            if found[key] != record[key]:
                raise UserError(f"{folder}: the base model {base} changed since training "
                                f"({key} differs); the adapter only fits the base it was trained on")
        from peft import PeftModel
        with _quiet_peft():
            return PeftModel.from_pretrained(_load_pretrained(base), str(folder))
    if not (folder / "config.json").exists():
        raise UserError(f"{folder}: neither a model (config.json) nor an adapter (adapter_config.json)")
    return _load_pretrained(folder)


def merged(model):
    """A plain HF model equal to `model`: an adapter's update folded into the base weights."""
    return model.merge_and_unload() if is_adapter(model) else model


def position_limit(model) -> int | None:
    """Most tokens (prompt + generated) the model can attend over: GPT-2's `n_positions`, most other
    HF models' `max_position_embeddings`; None when the config names no limit (e.g. rotary-only)."""
    config = getattr(model, "config", None)
    for key in ("n_positions", "max_position_embeddings"):
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    return None


def fit_prompt(ids: list[int], max_new_tokens: int, limit: int | None,
               keep: int = 0) -> tuple[list[int], int]:
    """(prompt ids, new-token budget) within the position limit: generating past it indexes beyond the
    position table. A prompt that leaves no room keeps its first `keep` tokens (a BOS) and its last
    ones, `limit - 1` in all (the end of a prompt is what the completion continues from)."""
    if limit is None:
        return ids, max_new_tokens
    if len(ids) > limit - 1:
        keep = min(keep, limit - 2)
        ids = ids[:keep] + ids[len(ids) - (limit - 1 - keep):]
    return ids, max(1, min(max_new_tokens, limit - len(ids)))


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
