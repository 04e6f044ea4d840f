"""The built-in GPT-2 as plain torch calls: transformers' GPT-2 forward for inference, and a training
forward over transformers' own model that skips the padding.

Why hand-written: for the small built-in models, evaluation time is mostly not arithmetic. Importing
transformers' model code (it pulls in torch._dynamo, the kernel hub and the loss registry) costs
about 3 CPU seconds of a fresh `protege eval lm`, and its forward spends ~4 ms a decoding step in
Python layers (output capturing, mask building, deprecation wrappers) that a 4x128 model computes
in less. This module loads a saved built-in GPT-2 (config.json + model.safetensors) and runs the
same operations in the same order (addmm for Conv1D, `scaled_dot_product_attention` with a causal
flag when nothing is padded and the additive mask it would make of a boolean one otherwise), except
that the tanh GELU is the fused kernel `train_logits` trains with (`F.gelu(approximate="tanh")`, the
same formula as transformers' chain of seven element-wise ops, within one float rounding of it and a
third faster), so its logits equal `GPT2LMHeadModel`'s within float rounding (tested) and greedy
decoding picks the same tokens on the benchmark runs. Saving, LoRA and any other
architecture use transformers: `load_plain_gpt2` returns None for a config it does not reproduce
exactly.

Training (`train_logits`) is a different cost: a step is compute-bound (the demo's 4x128 model on 32
arithmetic rows is ~10 GFLOP forward and backward), and a padded batch spends a fifth of it on padding
and half the output side on prompt steps the loss never reads; `train_logits` runs the same
operations on the rows that matter, with the `GPT2LMHeadModel`'s own parameters, so optimiser,
checkpoints and saving are unchanged (docs/results/lm_irl.md, benchmarks/lm_train_speed.py).
"""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

# Config values this forward reproduces; any other value (or a key it does not know to be harmless)
# means the saved model needs transformers' own GPT-2.
REQUIRED = {"model_type": "gpt2", "activation_function": "gelu_new", "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
            "add_cross_attention": False}
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def load_plain_gpt2(folder: str | Path) -> "PlainGPT2 | None":
    """The saved model as a `PlainGPT2`, or None when the folder holds something else (an adapter,
    another architecture, a GPT-2 setting this forward does not reproduce, untied output weights)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        return None
    try:
        config = json.loads((folder / "config.json").read_text())
    except ValueError:  # transformers' loading names the broken file
        return None
    if not isinstance(config, dict) or any(config.get(k, v) != v for k, v in REQUIRED.items()) or config.get("model_type") != "gpt2" \
            or not config.get("tie_word_embeddings", True) or config.get("n_inner") is not None:
        return None
    from safetensors.torch import load_file
    weights = {k.removeprefix("transformer."): v.float() for k, v in load_file(folder / "model.safetensors").items()}
    if "lm_head.weight" in weights and not torch.equal(weights.pop("lm_head.weight"), weights["wte.weight"]):
        return None
    top_k = None
    if (folder / "generation_config.json").is_file():
        top_k = json.loads((folder / "generation_config.json").read_text()).get("top_k")
    return PlainGPT2(config, weights, top_k)


class PlainGPT2(torch.nn.Module):
    """GPT-2's forward (pre-norm blocks, learned positions, tied output embedding) for inference.
    Called like transformers' model: `model(input_ids=, attention_mask=, position_ids=, cache=,
    logits_to_keep=)` returns an object whose `.logits` are [B, T, V] (or the last `logits_to_keep`)."""

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], top_k: int | None = None):
        super().__init__()
        self.config = SimpleNamespace(**config, num_hidden_layers=config["n_layer"])
        self.generation_config = SimpleNamespace(top_k=top_k)
        self.n_layer, self.n_head, self.eps = config["n_layer"], config["n_head"], config["layer_norm_epsilon"]
        self.params = torch.nn.ParameterDict({k.replace(".", "/"): torch.nn.Parameter(v, requires_grad=False)
                                              for k, v in weights.items()})
        # plain dict lookups in the per-step path; the Parameters themselves, so that `.to(device)`
        # (which swaps each Parameter's data in place) moves what the forward reads
        self.w = {k: self.params[k.replace(".", "/")] for k in weights}

    def new_cache(self, capacity: int) -> "PlainCache":
        return PlainCache(self.n_layer, capacity)

    @torch.inference_mode()
    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, logits_to_keep=0, **_):
        w = self.w
        past = cache.length if cache is not None else 0
        if position_ids is None:  # transformers' default: positions count from the cached length
            position_ids = (torch.arange(input_ids.shape[1], device=input_ids.device) + past)[None]
        h = w["wte.weight"][input_ids] + w["wpe.weight"][position_ids]
        mask = self._mask(attention_mask, input_ids.shape[1], past)
        for i in range(self.n_layer):
            h = self._block(h, i, mask, cache)
        if cache is not None:
            cache.length += input_ids.shape[1]
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        h = F.layer_norm(h, h.shape[-1:], w["ln_f.weight"], w["ln_f.bias"], self.eps)
        return SimpleNamespace(logits=F.linear(h, w["wte.weight"]))

    @staticmethod
    def _mask(attention_mask, q_len: int, past: int):
        """None when nothing is padded (sdpa's causal flag, as transformers' sdpa path); else an additive
        [B, 1, Q, K] mask (0 or -inf): causal and not a padding key. A padding query row may attend to itself, so
        no row is all masked (its output is never read; this keeps it finite)."""
        if attention_mask is None or bool(attention_mask.all()):
            return None
        k_len = past + q_len
        device = attention_mask.device
        query_pos = torch.arange(past, k_len, device=device)[:, None]
        causal = torch.arange(k_len, device=device)[None, :] <= query_pos
        mask = causal[None] & attention_mask[:, None, :k_len].bool()
        mask |= torch.arange(k_len, device=device)[None, None, :] == query_pos[None]
        # as the additive float mask sdpa makes of a boolean one (same output), built once for all
        # layers instead of once per layer
        return torch.zeros(mask.shape, dtype=torch.float32, device=device).masked_fill_(~mask, -math.inf)[:, None]

    def _block(self, h, i: int, mask, cache):
        w, p = self.w, f"h.{i}."
        x = F.layer_norm(h, h.shape[-1:], w[p + "ln_1.weight"], w[p + "ln_1.bias"], self.eps)
        q, k, v = _conv1d(x, w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"]).split(h.shape[-1], dim=2)
        heads = lambda t: t.view(*t.shape[:-1], self.n_head, -1).transpose(1, 2)  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v)
        if cache is not None:
            k, v = cache.update(i, k, v)
        causal = mask is None and q.shape[2] > 1
        if causal and k.shape[2] > q.shape[2]:  # as transformers: the causal flag aligns top-left
            raise ValueError("a multi-token step after cached tokens needs an attention mask")
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           scale=q.shape[-1] ** -0.5)
        a = a.transpose(1, 2).reshape(*h.shape[:-1], -1).contiguous()
        h = _conv1d(a, w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"]) + h
        x = F.layer_norm(h, h.shape[-1:], w[p + "ln_2.weight"], w[p + "ln_2.bias"], self.eps)
        x = F.gelu(_conv1d(x, w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"]), approximate="tanh")
        return h + _conv1d(x, w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"])


def _conv1d(x, weight, bias):
    """transformers' Conv1D: x @ weight + bias as one addmm over the flattened rows."""
    return torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight).view(*x.shape[:-1], weight.shape[1])


def _gelu_new(x):
    """GPT-2's GELU, the tanh approximation, written as transformers' NewGELUActivation writes it."""
    return 0.5 * x * (1.0 + torch.tanh(SQRT_2_OVER_PI * (x + 0.044715 * torch.pow(x, 3.0))))


class PlainCache:
    """Keys and values of every layer in buffers allocated once for `capacity` tokens, written in
    place; `batch_select_indices` keeps the rows still decoding (as transformers' Cache)."""

    def __init__(self, n_layer: int, capacity: int):
        self.capacity, self.length = capacity, 0
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    def update(self, layer: int, k, v):
        if self.keys[layer] is None:
            self.keys[layer] = k.new_empty((*k.shape[:2], self.capacity, k.shape[-1]))
            self.values[layer] = v.new_empty((*v.shape[:2], self.capacity, v.shape[-1]))
        end = self.length + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} tokens, {end} were written")
        self.keys[layer][:, :, self.length:end] = k
        self.values[layer][:, :, self.length:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def batch_select_indices(self, indices):
        self.keys = [self._select(k, indices) for k in self.keys]
        self.values = [self._select(v, indices) for v in self.values]

    def _select(self, buffer, indices):
        """The rows `indices` of a layer's buffer in a new buffer of the same capacity: only the
        written positions are copied (`index_select` into them: ~6x less than indexing the whole
        buffer, which copies the unwritten capacity too)."""
        if buffer is None:
            return None
        selected = buffer.new_empty((len(indices), *buffer.shape[1:]))
        torch.index_select(buffer[:, :, :self.length], 0, indices, out=selected[:, :, :self.length])
        return selected


# training: the same forward over transformers' own GPT2LMHeadModel parameters, without the padding --
def trains_plain(model) -> bool:
    """True when `train_logits` reproduces `model`'s forward: a bare built-in-style GPT2LMHeadModel
    (not wrapped by peft or DistributedDataParallel) with the REQUIRED settings, a tied output
    embedding, the default MLP width and no dropout (transformers draws dropout masks we would not)."""
    from transformers import GPT2LMHeadModel
    if type(model) is not GPT2LMHeadModel:
        return False
    config = model.config
    dropout = (config.resid_pdrop, config.embd_pdrop, config.attn_pdrop) if model.training else (0,)
    return all(getattr(config, k, v) == v for k, v in REQUIRED.items()) and config.n_inner is None \
        and model.lm_head.weight is model.transformer.wte.weight and not any(dropout)


def train_logits(model, input_ids, attention_mask, loss_mask, fused_gelu: bool = True):
    """Logits [B, T-1, V] at the steps where `loss_mask` [B, T-1] is true, 0 at every other step, as a
    GPT2LMHeadModel's `logits[:, :-1]` with gradients to its own parameters (see `trains_plain`).

    Why: a training batch of short sequences is mostly work the loss never reads. Every per-token
    operation (layer norms, the four matmuls of a block, the GELU) runs on the real tokens only, not on
    the padding up to the batch's longest row (~19% of the rows on the arithmetic task); attention
    scatters them back to [B, T] and runs causally, which for right padding attends to exactly the keys
    the padding mask allows. The last block's output side (attention projection, MLP, final norm,
    output embedding) runs only on the steps the loss counts (the completion, not the prompt), since no
    other position's output reaches the loss. Same operations in the same order otherwise, so with
    fused_gelu=False the logits equal transformers' bit for bit; fused_gelu=True computes GPT-2's tanh
    GELU in one kernel (`F.gelu(approximate="tanh")`, the same formula, within one float rounding of
    transformers' chain of seven element-wise ops, and half their time forward and backward).
    Requires right padding (the attention mask of each row is ones, then zeros)."""
    t, (B, T) = model.transformer, input_ids.shape
    lengths = attention_mask.sum(1)
    if not torch.equal(attention_mask.bool(), torch.arange(T, device=input_ids.device)[None] < lengths[:, None]):
        raise ValueError("train_logits needs right-padded rows (ones, then zeros)")
    real = attention_mask.reshape(-1).nonzero().squeeze(1)  # flat [B*T] index of every real token
    counted = F.pad(loss_mask, (0, 1)).reshape(-1)[real].nonzero().squeeze(1)  # among the real rows
    h = F.embedding(input_ids.reshape(-1)[real], t.wte.weight) + \
        F.embedding(torch.arange(T, device=input_ids.device).repeat(B)[real], t.wpe.weight)
    act = (lambda x: F.gelu(x, approximate="tanh")) if fused_gelu else _gelu_new
    last = len(t.h) - 1
    for i, block in enumerate(t.h):
        x = F.layer_norm(h, h.shape[-1:], block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
        a = _padded_attention(_conv1d(x, block.attn.c_attn.weight, block.attn.c_attn.bias), real, B, T,
                              model.config.n_head)
        if i == last:  # from here on every row is independent: keep the counted ones
            a, h = a[counted], h[counted]
        h = _conv1d(a, block.attn.c_proj.weight, block.attn.c_proj.bias) + h
        x = F.layer_norm(h, h.shape[-1:], block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
        x = act(_conv1d(x, block.mlp.c_fc.weight, block.mlp.c_fc.bias))
        h = h + _conv1d(x, block.mlp.c_proj.weight, block.mlp.c_proj.bias)
    h = F.layer_norm(h, h.shape[-1:], t.ln_f.weight, t.ln_f.bias, t.ln_f.eps)
    logits = F.linear(h, model.lm_head.weight)
    return logits.new_zeros((B, T - 1, logits.shape[-1])).index_put((loss_mask,), logits)


def _padded_attention(qkv, real, batch: int, length: int, n_head: int):
    """Causal self-attention of the real rows `qkv` [N, 3C]: scattered to [B, T] (padding rows zero,
    which with right padding no real query sees), attended with sdpa's causal flag, gathered back."""
    width = qkv.shape[1] // 3
    padded = qkv.new_zeros((batch * length, 3 * width)).index_copy(0, real, qkv)
    heads = lambda z: z.view(batch, length, n_head, -1).transpose(1, 2)
    q, k, v = (heads(z) for z in padded.view(batch, length, -1).split(width, dim=2))
    a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=q.shape[-1] ** -0.5)
    return a.transpose(1, 2).reshape(batch * length, width)[real]
