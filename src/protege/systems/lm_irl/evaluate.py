"""Evaluate a language model on held-out prompts: task score, diversity, extracted reward, and the
negative log-likelihood and entropy of the policy along the held-out reference completions.

Greedy (or beam) decoding gives the task score; N samples per prompt give the sampled score and the
diversity metrics; a scoring pass gives each sample's mean token entropy and its IQLearn-extracted
reward (sum over the completion of r_t = Q(s_t, a_t) - gamma V(s_{t+1})), whose Spearman correlation
with the task score says whether the model's implicit reward knows what a good completion is.
"""

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.runs import added_config_key
from protege.data.text import TextExample
from protege.data.tokens import collate, encode, prompt_ids, special_prefix, step_logits
from protege.eval.text_metrics import distinct_n, rouge_l, self_bleu
from protege.losses.iqlearn import extracted_reward
from protege.nn.decode import model_device
from protege.nn.lm import fit_prompt, position_limit
from protege.nn.lm import generate as generate_tokens

# runs saved before these evaluation settings existed decoded without them: they resume as such
added_config_key("eval.no_repeat_ngram", 0)
added_config_key("eval.mbr_samples", 0)
added_config_key("eval.mbr_temperature", 0.7)


@dataclass
class EvalConfig:
    prompts: int = 200
    """held-out prompts to evaluate (at most the task's eval_size)"""
    samples: int = 8
    """samples per prompt for diversity and reward correlation"""
    sample_prompts: int = 50
    """prompts that get `samples` samples each"""
    temperature: float = 1.0
    """sampling temperature (> 0; 1 samples the model's own distribution cut to its top_k tokens: the
    model's generation config's top_k, else 50 as in transformers' generate)"""
    top_p: float = 1.0
    """nucleus sampling: keep the smallest set of tokens with this much probability (1 keeps all)"""
    num_beams: int = 1
    """> 1 uses beam search for the deterministic decode"""
    max_new_tokens: int = 64
    """most tokens generated per completion (also online IQLearn's sample length)"""
    batch_size: int = 64
    """sequences generated or scored per forward pass"""
    no_repeat_ngram: int = 0
    """> 0: no n-gram of this length appears twice in a completion (greedy and sampled; 0 = off)"""
    mbr_samples: int = 0
    """> 0: also score minimum-Bayes-risk decoding (`eval/mbr_score`): of the greedy completion and
    this many samples, the one that agrees most with the others under the task's metric"""
    mbr_temperature: float = 0.7
    """sampling temperature of the MBR candidates (> 0)"""

    def __post_init__(self):
        check_fields(self, prompts=">=1", samples=">=1", sample_prompts=">=1", temperature=">0",
                     top_p="(0,1]", num_beams=">=1", max_new_tokens=">=1", batch_size=">=1",
                     no_repeat_ngram=">=0", mbr_samples=">=0", mbr_temperature=">0")


def eval_config(**values) -> EvalConfig:
    """An EvalConfig from command-line options: a bad value is a one-line UserError naming it."""
    try:
        return EvalConfig(**values)
    except ValueError as e:
        raise UserError(f"evaluation settings: {e}") from None


def task_score(kind: str, example: TextExample, completion: str) -> float:
    """1/0 exact answer for arithmetic; ROUGE-L F1 against the reference for text tasks."""
    if kind == "arithmetic":
        from protege.worlds.text.arithmetic import is_correct
        return float(is_correct(example.prompt, completion))
    return rouge_l(example.completion, completion)


IMPLS = ("batched", "transformers")


def generate(model, tokenizer, prompts: list[str], cfg: EvalConfig, n: int = 1, sample: bool = False,
             impl: str = "batched") -> list[list[str]]:
    """`n` completions per prompt. "batched" decodes all prompts together with a KV cache (see
    protege.nn.decode); beam search, and impl="transformers" (the earlier path, kept as the
    reference the speed benchmark and tests compare against), go through transformers' `generate`."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    model.eval()
    fitted = _fitted_prompts(model, tokenizer, prompts, cfg)
    if impl == "transformers" or (cfg.num_beams > 1 and not sample):
        if not hasattr(model, "generate"):
            raise ValueError("transformers' generate (beam search, impl='transformers') needs the model "
                             "loaded by transformers, not load_trained(..., inference_only=True)")
        return _generate_by_length(model, tokenizer, fitted, cfg, n, sample)
    texts, _, _ = _decode(model, tokenizer, fitted, cfg, n, sample)
    return texts


def _fitted_prompts(model, tokenizer, prompts: list[str], cfg: EvalConfig) -> list[tuple[list[int], int]]:
    """(ids, new-token budget) of each prompt within the model's position limit, tokenised once."""
    limit = position_limit(model)
    prefix = special_prefix(tokenizer)
    return [fit_prompt(prompt_ids(tokenizer, p, prefix), cfg.max_new_tokens, limit, len(prefix))
            for p in prompts]


def _decode(model, tokenizer, fitted, cfg: EvalConfig, n: int, sample: bool, step_stats: bool = False):
    """(texts per prompt, token rows, per-step stats or None) from protege.nn.decode, n per prompt."""
    from protege.nn.decode import decode, sampling_like_generate
    sampling = sampling_like_generate(model, cfg.temperature, cfg.top_p) if sample else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    decoded = decode(model, [ids for ids, _ in fitted for _ in range(n)],
                     [budget for _, budget in fitted for _ in range(n)], tokenizer.eos_token_id, pad,
                     sampling, cfg.batch_size, step_stats=step_stats, no_repeat_ngram=cfg.no_repeat_ngram)
    rows, stats = decoded if step_stats else (decoded, None)
    texts = [t.strip() for t in tokenizer.batch_decode(rows, skip_special_tokens=True)]
    return [texts[i * n:(i + 1) * n] for i in range(len(fitted))], rows, stats


@torch.no_grad()
def _generate_by_length(model, tokenizer, fitted: list[tuple[list[int], int]], cfg: EvalConfig, n: int,
                        sample: bool) -> list[list[str]]:
    """transformers' `generate` on batches of prompts of one token length (so no padding is needed)."""
    by_length = defaultdict(list)
    for i, (ids, _) in enumerate(fitted):
        by_length[len(ids)].append(i)
    out: list[list[str]] = [[] for _ in fitted]
    per_batch = max(1, cfg.batch_size // n)
    for indices in by_length.values():
        for start in range(0, len(indices), per_batch):
            chunk = indices[start:start + per_batch]
            ids = torch.tensor([fitted[i][0] for i in chunk], device=model_device(model))
            kwargs = {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p} if sample \
                else {"do_sample": False, "num_beams": cfg.num_beams}
            tokens = generate_tokens(model, input_ids=ids, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=fitted[chunk[0]][1], num_return_sequences=n,
                                     eos_token_id=tokenizer.eos_token_id,
                                     pad_token_id=tokenizer.pad_token_id, **kwargs)
            texts = tokenizer.batch_decode(tokens[:, ids.shape[1]:], skip_special_tokens=True)
            for j, i in enumerate(chunk):
                out[i] = [t.strip() for t in texts[j * n:(j + 1) * n]]
    return out


def _length_batched_logits(model, tokenizer, examples: list[TextExample], context: int, batch_size: int):
    """(indices into `examples`, batch, float32 per-step logits) for `examples` encoded once and
    batched by length (sorted), so little of each forward pass is padding; run under the caller's
    inference mode."""
    encoded, _ = encode(examples, tokenizer, context)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = collate([encoded[i] for i in chunk], tokenizer.pad_token_id).to(model_device(model))
        yield chunk, batch, step_logits(model, batch).float()


@torch.inference_mode()
def score_completions(model, tokenizer, pairs: list[TextExample], context: int, gamma: float = 1.0,
                      batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per completion: extracted sequence reward and mean per-token policy entropy."""
    model.eval()
    rewards, entropies = np.zeros(len(pairs)), np.zeros(len(pairs))
    for chunk, batch, logits in _length_batched_logits(model, tokenizer, pairs, context, batch_size):
        r = extracted_reward(logits, batch.input_ids[:, 1:], batch.terminal, gamma)
        mask = batch.loss_mask.float()
        log_probs = torch.log_softmax(logits, -1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        rewards[chunk] = (r * mask).sum(-1).cpu().numpy()
        entropies[chunk] = ((entropy * mask).sum(-1) / mask.sum(-1).clamp_min(1)).cpu().numpy()
    return rewards, entropies


@torch.inference_mode()
def reference_fit(model, tokenizer, examples: list[TextExample], context: int,
                  batch_size: int = 64) -> tuple[float, float]:
    """(NLL, entropy) of the policy along the reference completions, teacher forced, each a mean
    per completion token (completion tokens and the EOS after them) over all the examples:
    NLL = sum_i,t -log pi(y_i,t | x_i, y_i,<t) / sum_i |y_i|, entropy = sum_i,t H(pi(. | x_i, y_i,<t))
    / sum_i |y_i|. On held-out examples both are deterministic (no sampling): the NLL says how much
    probability the model keeps for answers it never saw (it grows as a model over-fits), the entropy
    how certain the model is along them."""
    model.eval()
    nll, entropy, tokens = 0.0, 0.0, 0
    for _, batch, logits in _length_batched_logits(model, tokenizer, examples, context, batch_size):
        log_probs = torch.log_softmax(logits, -1)
        taken = log_probs.gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
        nll -= float((taken * batch.loss_mask).sum())
        entropy -= float(((log_probs.exp() * log_probs).sum(-1) * batch.loss_mask).sum())
        tokens += int(batch.loss_mask.sum())
    return nll / max(tokens, 1), entropy / max(tokens, 1)


def sample_and_score(model, tokenizer, examples: list[TextExample], cfg: EvalConfig, context: int,
                     gamma: float = 1.0) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """`cfg.samples` samples of each example's prompt, and each sample's extracted reward and mean
    token entropy as `score_completions` gives them, without its second forward pass where it would
    see the sampled tokens again: when re-tokenising a sample (as the scoring pass does) gives back
    the prompt and the sampled tokens ending with EOS, the sampling pass's own logits are used
    (equal up to float rounding: another batch layout); other samples (cut at their token budget,
    or whose text tokenises differently) go through `score_completions`."""
    model.eval()
    n = cfg.samples
    fitted = _fitted_prompts(model, tokenizer, [e.prompt for e in examples], cfg)
    samples, rows, stats = _decode(model, tokenizer, fitted, cfg, n, sample=True, step_stats=True)
    pairs = [TextExample(e.prompt, s or " ") for e, group in zip(examples, samples) for s in group]
    rewards, entropies = np.zeros(len(pairs)), np.zeros(len(pairs))
    rescore = []
    for i, (pair, row) in enumerate(zip(pairs, rows)):
        prompt = fitted[i // n][0]
        encoded, _ = encode([pair], tokenizer, context)
        if row[-1] == tokenizer.eos_token_id and len(encoded) == 1 and \
                encoded[0].prompt_len == len(prompt) and encoded[0].ids == prompt + row:
            rewards[i], entropies[i] = _reward_and_entropy(torch.tensor(stats[i]), gamma)
        else:
            rescore.append(i)
    if rescore:
        rewards[rescore], entropies[rescore] = score_completions(model, tokenizer, [pairs[i] for i in rescore],
                                                                 context, gamma, cfg.batch_size)
    return samples, rewards, entropies


def _reward_and_entropy(stats: torch.Tensor, gamma: float) -> tuple[float, float]:
    """From per-step (Q(s_t, a_t), V(s_t), entropy) of one completion ending with EOS: the sequence
    reward sum_t Q(s_t, a_t) - gamma V(s_{t+1}) (V = 0 after the last, terminal step) and the mean
    entropy, as protege.losses.iqlearn.extracted_reward and `score_completions` compute them."""
    q, values, entropy = stats.unbind(-1)
    values_next = torch.cat([values[1:], values.new_zeros(1)])
    return float((q - gamma * values_next).sum()), float(entropy.sum() / len(entropy))


def evaluate_lm(model, tokenizer, kind: str, examples: list[TextExample], cfg: EvalConfig,
                context: int, gamma: float = 1.0, impl: str = "batched") -> dict:
    """The metrics table row of one model: task score (greedy and sampled), diversity, reward corr.
    `impl` picks the decoding path (see `generate`)."""
    from protege.eval.stats import spearman
    examples = examples[:cfg.prompts]
    greedy = generate(model, tokenizer, [e.prompt for e in examples], cfg, impl=impl)
    greedy_scores = [task_score(kind, e, c[0]) for e, c in zip(examples, greedy)]
    sampled_examples = examples[:cfg.sample_prompts]
    if impl == "batched":
        samples, rewards, entropies = sample_and_score(model, tokenizer, sampled_examples, cfg, context, gamma)
    else:  # the earlier path: sample, then score every sample in a second forward pass
        samples = generate(model, tokenizer, [e.prompt for e in sampled_examples], cfg, n=cfg.samples,
                           sample=True, impl=impl)
        pairs = [TextExample(e.prompt, s or " ") for e, group in zip(sampled_examples, samples) for s in group]
        rewards, entropies = score_completions(model, tokenizer, pairs, context, gamma)
    sample_scores = np.asarray([task_score(kind, e, s) for e, group in zip(sampled_examples, samples)
                                for s in group])
    corr = spearman(rewards, sample_scores)  # nan when every sample scores the same
    nll, entropy = reference_fit(model, tokenizer, examples, context, cfg.batch_size)
    mbr = {}
    if cfg.mbr_samples and impl == "batched":
        from protege.systems.lm_irl.mbr import mbr_completions
        chosen = mbr_completions(model, tokenizer, kind, [e.prompt for e in examples], cfg,
                                 greedy=[g[0] for g in greedy])
        mbr = {"eval/mbr_score": float(np.mean([task_score(kind, e, c) for e, c in zip(examples, chosen)]))}
    return {"eval/greedy_score": float(np.mean(greedy_scores)), **mbr,
            "eval/sampled_score": float(np.mean(sample_scores)),
            "eval/self_bleu": float(np.nanmean([self_bleu(g) for g in samples])),
            "eval/distinct_2": float(np.mean([distinct_n(g, 2) for g in samples])),
            "eval/token_entropy": float(np.mean(entropies)),
            "eval/heldout_nll": nll, "eval/heldout_entropy": entropy,
            "eval/reward_spearman": float(corr)}


def load_trained(run_dir: Path, inference_only: bool = False):
    """(model, tokenizer, resolved config) of a finished `lm` run: the full model, or for an adapter
    (LoRA) run the recorded base model with the adapter on top. `inference_only`, for decoding and
    scoring only: a built-in GPT-2 loads as `protege.nn.gpt2_plain.PlainGPT2` (same logits) and a
    plain tokenizer.json as `protege.nn.tokenizer.BackendTokenizer` (same ids and texts), so a
    built-in run's evaluation never imports transformers; anything else loads as always."""
    from protege.core.runs import check_safetensors, read_run_config
    from protege.nn.lm import load_lm
    from protege.nn.tokenizer import load_inference_tokenizer, load_tokenizer
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    folder = run_dir / "model"
    if not (folder / "config.json").exists() and not (folder / "adapter_config.json").exists():
        why = "the run has not finished; resume it with --resume" if not (run_dir / "summary.json").exists() \
            else "the run finished, so the folder was moved or removed"
        raise UserError(f"{run_dir}: no trained model in {folder} ({why})")
    if (folder / "config.json").exists():
        check_safetensors(folder / "model.safetensors")
    else:
        check_safetensors(folder / "adapter_model.safetensors")
    load_tokenizer_of_run = load_inference_tokenizer if inference_only else load_tokenizer
    if inference_only:
        from protege.nn.gpt2_plain import load_plain_gpt2
        plain = load_plain_gpt2(folder)
        if plain is not None:
            return plain, load_tokenizer_of_run(run_dir / "tokenizer"), config
    try:
        model = load_lm(folder)
    except (OSError, ValueError, KeyError, TypeError) as e:  # e.g. an empty or hand-edited config.json
        raise UserError(f"{folder}: cannot load the trained model "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:150]})") from None
    return model, load_tokenizer_of_run(run_dir / "tokenizer"), config


def baselines(kind: str, train: list[TextExample], examples: list[TextExample], seed: int) -> dict:
    """The trivial baselines (see `baselines.py`) under this task's metric, on the model's prompts."""
    from protege.systems.lm_irl.baselines import trivial_baselines
    return trivial_baselines(lambda e, c: task_score(kind, e, c), train, examples, seed, subject(kind))


def subject(kind: str):
    """What a task's prompt names that its references often repeat (a baseline copies it): FOLDOC's
    term; None for other tasks."""
    if kind != "foldoc":
        return None
    from protege.worlds.text.foldoc import term_of
    return ("term", term_of)


def reward_table(run_dir: Path, examples: list[TextExample]) -> list[dict]:
    """Extracted sequence reward (and mean token entropy) of each completion under a trained model."""
    model, tokenizer, config = load_trained(run_dir, inference_only=True)
    gamma = config.get("objective", {}).get("gamma", 1.0)
    rewards, entropies = score_completions(model, tokenizer, examples, config["model"]["context"], gamma)
    kind = config.get("task", {}).get("kind", "file")
    return [{"prompt": e.prompt, "completion": e.completion, "reward": float(r), "entropy": float(h),
             **({"correct": task_score(kind, e, e.completion)} if kind == "arithmetic" else {})}
            for e, r, h in zip(examples, rewards, entropies)]
