"""Batched decoding with a KV cache: many prompts of different lengths in one batch.

Hand-written around the model's own forward because transformers' `generate` keeps every row of a
batch until the longest one finishes and spends more time per step on its bookkeeping than the small
built-in models spend computing. Here prompts of any length share a batch (left padded: the attention
mask hides the padding and position ids count real tokens only, as `generate` derives them), a row
leaves the batch and the cache as soon as it emits EOS or reaches its own token budget, and the next
token is chosen exactly as `generate` chooses it: argmax of the float32 logits, or the temperature,
top-k and top-p warpers as transformers writes them (`warp`) followed by `torch.multinomial`. Greedy output is therefore the
same as `generate`'s (up to float rounding that differs with the batch shape); sampled output is
seeded by torch's global generator but draws in a different order, so it matches `generate`'s in
distribution, not token for token.
"""

import functools
import inspect
from dataclasses import dataclass

import torch

HF_DEFAULT_TOP_K = 50
"""what `generate` applies when sampling and the model's generation config sets no top_k"""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    """divides the logits (> 0)"""
    top_k: int = HF_DEFAULT_TOP_K
    """keep the k most likely tokens (0 keeps all)"""
    top_p: float = 1.0
    """keep the smallest set of tokens with this much probability (1 keeps all)"""

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def sampling_like_generate(model, temperature: float, top_p: float) -> Sampling:
    """The warpers `model.generate(do_sample=True, temperature=..., top_p=...)` would apply: its
    generation config's top_k, or transformers' default of 50 when it sets none."""
    top_k = getattr(getattr(model, "generation_config", None), "top_k", None)
    return Sampling(temperature, HF_DEFAULT_TOP_K if top_k is None else top_k, top_p)


def warp(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """transformers' TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper (filter value -inf,
    at least one token kept), in the order `generate` applies them, on [B, V] logits. Written out
    (their code, line for line) because importing transformers' generation module costs about a CPU
    second of every fresh `eval lm` and `lm sample`, more than sampling itself; the tests check the
    result is bit-equal to the library's warpers."""
    if sampling.temperature != 1.0:
        logits = logits / sampling.temperature
    if sampling.top_k:
        kth_largest = torch.topk(logits, min(sampling.top_k, logits.shape[-1]))[0][..., -1, None]
        logits = logits.masked_fill(logits < kth_largest, -float("inf"))
    if sampling.top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(logits, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        sorted_remove = cumulative <= (1 - sampling.top_p)
        sorted_remove[..., -1:] = 0  # the most likely token always stays
        logits = logits.masked_fill(sorted_remove.scatter(1, sorted_indices, sorted_remove), -float("inf"))
    return logits


@torch.inference_mode()
def decode(model, prompts: list[list[int]], budgets: list[int], eos_id: int, pad_id: int,
           sampling: Sampling | None = None, batch_size: int = 64, step_stats: bool = False,
           no_repeat_ngram: int = 0):
    """New token ids for each prompt (greedy when `sampling` is None): at most `budgets[i]` tokens,
    ending with EOS when the model emitted it. Prompts are sorted by length and decoded
    `batch_size` at a time; the output keeps the input order. With `step_stats`, returns
    (rows, stats): stats[i][t] is (logit of the chosen token, logsumexp of the logits, entropy of
    the softmax) at step t, from the unwarped float32 logits, so that a scoring pass over the same
    tokens need not run the model again (see protege.systems.lm_irl.evaluate.sample_and_score)."""
    if len(prompts) != len(budgets):
        raise ValueError(f"{len(prompts)} prompts but {len(budgets)} budgets")
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[list[int]] = [[] for _ in prompts]
    stats: list[list[list[float]]] = [[] for _ in prompts]
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        rows, row_stats = _decode_batch(model, [prompts[i] for i in chunk], [budgets[i] for i in chunk],
                                        eos_id, pad_id, sampling, step_stats, no_repeat_ngram)
        for i, row, row_stat in zip(chunk, rows, row_stats):
            out[i], stats[i] = row, row_stat
    return (out, stats) if step_stats else out


def model_device(model) -> torch.device:
    """Where the model's weights are, so its inputs are built there (cpu for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


def left_padded(prompts: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids, attention mask), each prompt right-aligned so every row's next token is the last."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    return ids, mask


def _decode_batch(model, prompts, budgets, eos_id, pad_id, sampling, step_stats=False, no_repeat_ngram=0):
    device = model_device(model)
    unique, copies = _unique_rows(prompts)
    copies = copies.to(device)
    ids, mask = left_padded(unique, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)  # padding's positions are never attended to
    cache = in_place_cache(model, ids.shape[1] + max(budgets))
    logits = _next_logits(model, ids, mask, positions, cache)
    if len(unique) < len(prompts):  # each distinct prompt is read once; its samples share its cache
        cache.batch_select_indices(copies)
        ids, mask, positions, logits = ids[copies], mask[copies], positions[copies], logits[copies]
    budget = torch.tensor(budgets, device=device)
    alive = torch.arange(len(prompts), device=device)  # batch row -> prompt
    out: list[list[int]] = [[] for _ in prompts]
    stats: list[list[list[float]]] = [[] for _ in prompts]
    for step in range(max(budgets)):
        if no_repeat_ngram:
            logits = ban_repeated_ngrams(logits, [out[row] for row in alive.tolist()], no_repeat_ngram)
        if sampling is None:
            token = logits.argmax(-1)
        else:
            token = torch.multinomial(torch.softmax(warp(logits, sampling), -1), 1).squeeze(1)
        for row, t in zip(alive.tolist(), token.tolist()):
            out[row].append(t)
        if step_stats:
            for row, stat in zip(alive.tolist(), _step_stats(logits, token).tolist()):
                stats[row].append(stat)
        going = ((token != eos_id) & (budget[alive] > step + 1)).nonzero().flatten()
        if len(going) == 0:
            break
        if len(going) < len(alive):  # finished rows leave the batch and the cache
            cache.batch_select_indices(going)
            alive, mask, positions, token = alive[going], mask[going], positions[going], token[going]
        ids = token[:, None]
        mask = torch.cat([mask, mask.new_ones(len(alive), 1)], dim=1)
        positions = positions[:, -1:] + 1
        logits = _next_logits(model, ids, mask, positions, cache)
    return out, stats


def ban_repeated_ngrams(logits: torch.Tensor, rows: list[list[int]], n: int) -> torch.Tensor:
    """`logits` with -inf on every token that would repeat an n-gram already in its row's completion
    (transformers' NoRepeatNGramLogitsProcessor, but over the new tokens only: copying the prompt's
    words, a term into its definition, stays allowed)."""
    banned = []
    for b, row in enumerate(rows):
        if len(row) < n:
            continue
        tail = tuple(row[len(row) - n + 1:])
        banned += [(b, row[i + n - 1]) for i in range(len(row) - n + 1) if tuple(row[i:i + n - 1]) == tail]
    if not banned:
        return logits
    logits = logits.clone()
    b, t = zip(*banned)
    logits[list(b), list(t)] = -float("inf")
    return logits


def _next_logits(model, ids, mask, positions, cache):
    """float32 logits of the next token of every row, the new tokens written to the cache."""
    result = model(input_ids=ids, attention_mask=mask, position_ids=positions, **{_cache_keyword(model): cache},
                   use_cache=True, logits_to_keep=1)
    return result.logits[:, -1].float()


def _cache_keyword(model) -> str:
    """The forward's name for the KV cache: `cache` for the plain GPT-2 and for transformers from 5.2x,
    `past_key_values` for earlier ones (they pass an unknown `cache=` silently to **kwargs and build a
    cache of their own, so the in-place one would never be written). The rename came to every model in
    one release, so GPT-2's signature says which this transformers has (a peft wrapper's or a
    decorated model's own forward may not show its parameters)."""
    return "cache" if hasattr(model, "new_cache") else _transformers_cache_keyword()


@functools.cache
def _transformers_cache_keyword() -> str:
    from transformers import GPT2Model
    return "cache" if "cache" in inspect.signature(GPT2Model.forward).parameters else "past_key_values"


def _unique_rows(prompts: list[list[int]]) -> tuple[list[list[int]], torch.Tensor]:
    """(the distinct prompts, for each prompt the index of its copy among them): n samples of one
    prompt need its prompt's keys and values once, then n copies of them."""
    index: dict[tuple, int] = {}
    copies = [index.setdefault(tuple(p), len(index)) for p in prompts]
    return [list(p) for p in index], torch.tensor(copies)


def _step_stats(logits, token):
    """[B, 3]: Q(s, a) (the chosen token's logit), V(s) = logsumexp Q(s, .), and the policy's entropy,
    computed as protege.losses.iqlearn and the scoring pass compute them."""
    log_probs = torch.log_softmax(logits, -1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    q = logits.gather(-1, token[:, None]).squeeze(-1)
    return torch.stack([q, torch.logsumexp(logits, -1), entropy], dim=1)


def in_place_cache(model, capacity: int):
    """A KV cache for `capacity` tokens whose layers write in place (see
    protege.nn.kv_cache.InPlaceLayer); transformers' own cache for models with anything but full
    attention in every layer (sliding windows, recurrent state), whose layers know what to keep.
    Imported here, not at the top: the plain GPT-2 brings its own cache, and a built-in run's
    `eval lm` then never imports transformers."""
    if hasattr(model, "new_cache"):  # protege.nn.gpt2_plain's model brings its own
        return model.new_cache(capacity)
    from protege.nn.kv_cache import hf_in_place_cache
    return hf_in_place_cache(model.config, capacity)
