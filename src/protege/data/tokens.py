"""Token batches for the token-level MDP: state = prompt + completion prefix, action = next token."""

from dataclasses import dataclass, fields, replace

import torch

from protege.core.errors import UserError
from protege.data.text import TextExample


@dataclass(frozen=True)
class EncodedExample:
    ids: list[int]
    """prompt tokens, then completion tokens, then EOS"""
    prompt_len: int


@dataclass(frozen=True)
class TokenBatch:
    input_ids: torch.Tensor
    """[B, T] right-padded token ids"""
    attention_mask: torch.Tensor
    """[B, T] 1 on real tokens"""
    loss_mask: torch.Tensor
    """[B, T-1] bool: true where the target token ids[:, t+1] is a completion token (or EOS)"""
    terminal: torch.Tensor
    """[B, T-1] bool: true at the step whose action is EOS (V = 0 after it)"""
    is_expert: torch.Tensor
    """[B] bool: demonstration rows (false for the policy's own samples in online IQLearn)"""

    def to(self, device) -> "TokenBatch":
        """The same batch with every tensor on `device` (the model's: a GPU run's batches)."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def special_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer's own template puts before a text by default: Llama's BOS; none for
    GPT-2's tokenizer or the built-in BPE (whose ids therefore stay as they always were)."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    for k in range(len(full) - len(plain) + 1):
        if full[k:k + len(plain)] == plain:
            return full[:k]
    return []


def prompt_ids(tokenizer, prompt: str, prefix: list[int] | None = None) -> list[int]:
    """A prompt's ids as the model sees them: the template's prefix (BOS), the prompt, a newline. The
    completion is encoded without specials: the EOS after it is ours (it ends the episode)."""
    prefix = special_prefix(tokenizer) if prefix is None else prefix
    return prefix + tokenizer(prompt + "\n", add_special_tokens=False)["input_ids"]


def encode(examples: list[TextExample], tokenizer, context: int, overflow: str = "truncate"):
    """Token ids per example; returns (encoded, number truncated). overflow: "truncate" or "refuse"."""
    encoded, truncated = [], 0
    prefix = special_prefix(tokenizer)
    for i, ex in enumerate(examples):
        prompt = prompt_ids(tokenizer, ex.prompt, prefix)
        completion = tokenizer(ex.completion, add_special_tokens=False)["input_ids"]
        ids = prompt + completion + [tokenizer.eos_token_id]
        if len(ids) > context:
            if overflow == "refuse":
                raise UserError(f"example {i + 1}: {len(ids)} tokens exceed the context of {context} "
                                f"(set task.overflow=truncate or model.context higher)")
            truncated += 1
            if len(prompt) >= context - 1:
                continue  # nothing of the completion would remain
            ids = ids[:context]
        encoded.append(EncodedExample(ids, len(prompt)))
    return encoded, truncated


def collate(rows: list[EncodedExample], pad_id: int, is_expert: list[bool] | None = None) -> TokenBatch:
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    loss_mask = torch.zeros((len(rows), width - 1), dtype=torch.bool)
    terminal = torch.zeros((len(rows), width - 1), dtype=torch.bool)
    for i, row in enumerate(rows):
        n = len(row.ids)
        ids[i, :n] = torch.tensor(row.ids)
        attention[i, :n] = 1
        loss_mask[i, row.prompt_len - 1:n - 1] = True
        terminal[i, n - 2] = True  # the last action (EOS, or the cut-off token) ends the episode
    expert = torch.tensor(is_expert if is_expert is not None else [True] * len(rows))
    return TokenBatch(ids, attention, loss_mask, terminal, expert)


def step_logits(model, batch: TokenBatch) -> torch.Tensor:
    """Q(s_t, .) for every step t: logits at positions 0..T-2, shape [B, T-1, V]."""
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
