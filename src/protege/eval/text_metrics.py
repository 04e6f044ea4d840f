"""Text metrics: diversity over several samples of one prompt (Self-BLEU, distinct-n) and ROUGE.

Self-BLEU comes from sacrebleu (each sample tokenised once) and ROUGE from Google's rouge-score
(ROUGE-L also with a faster LCS count, same values); distinct-n is a two-line count.
"""

from contextlib import contextmanager
from functools import lru_cache

import numpy as np


def self_bleu(samples: list[str]) -> float:
    """Mean sentence BLEU (0-100) of each sample against the others; lower means more diverse.
    sacrebleu's `sentence_bleu(sample, others)` (13a tokens, exp smoothing, effective order): its
    tokenizer, n-gram counts and `BLEU.compute_bleu`, with each sample tokenised and counted once
    instead of once per other sample (that repetition was nine tenths of the time; tested equal),
    and each n-gram's clipping limit (its largest count in any other sample) read from its two
    largest counts over all samples instead of merging the other samples' counts for each sample."""
    from sacrebleu.metrics.bleu import BLEU, MAX_NGRAM_ORDER
    from sacrebleu.metrics.helpers import extract_all_word_ngrams
    if len(samples) < 2:
        return float("nan")
    order = MAX_NGRAM_ORDER
    counted = [extract_all_word_ngrams(_bleu_tokenizer()(s.rstrip()), 1, order) for s in samples]
    largest = _two_largest_counts([ngrams for ngrams, _ in counted])
    scores = []
    for i, (hypothesis, hypothesis_len) in enumerate(counted):
        correct, total = [0] * order, [0] * order
        for ngram, count in hypothesis.items():
            first, holder, second = largest[ngram]
            limit = second if holder == i else first  # the largest count among the other samples
            total[len(ngram) - 1] += count
            correct[len(ngram) - 1] += min(count, limit)
        other_lengths = [n for j, (_, n) in enumerate(counted) if j != i]
        scores.append(BLEU.compute_bleu(correct, total, hypothesis_len,
                                        _closest_length(hypothesis_len, other_lengths),
                                        smooth_method="exp", effective_order=True).score)
    return float(np.mean(scores))


def _two_largest_counts(counts: list[dict]) -> dict:
    """For each n-gram: (its largest count, the first sample with that count, the largest count in
    any other sample, 0 when none): what each sample's clipping limit needs."""
    largest: dict = {}
    for i, ngrams in enumerate(counts):
        for ngram, count in ngrams.items():
            first, holder, second = largest.get(ngram, (0, -1, 0))
            if count > first:
                largest[ngram] = (count, i, first)
            elif count > second:
                largest[ngram] = (first, holder, count)
    return largest


@lru_cache(maxsize=1)
def _bleu_tokenizer():
    from sacrebleu.metrics.bleu import BLEU
    return BLEU(effective_order=True).tokenizer  # what sentence_bleu tokenises with (13a)


def _closest_length(length: int, lengths: list[int]) -> int:
    """The reference length BLEU's brevity penalty uses: the closest to `length`, the shorter of two."""
    return min(lengths, key=lambda n: (abs(length - n), n))


def distinct_n(samples: list[str], n: int = 2) -> float:
    """Unique n-grams over all n-grams in the samples (whitespace tokens); higher is more diverse."""
    grams = [tuple(words[i:i + n]) for s in samples for words in [s.split()]
             for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F1 of one prediction against one reference."""
    scores = _rouge_scorer().score(reference, prediction)
    return {name: float(score.fmeasure) for name, score in scores.items()}


def rouge_l(reference: str, prediction: str) -> float:
    """`rouge(prediction, reference)["rougeL"]`, faster: the same stemming tokenizer and F-measure
    as rouge-score, each text tokenised once per process (task scores and the trivial baselines
    score the same few texts thousands of times, and Porter stemming them again was most of their
    time), and the longest common subsequence counted by `lcs_length` instead of rouge-score's
    Python table of len(reference) x len(prediction) cells."""
    from rouge_score.scoring import fmeasure
    target, predicted = _rouge_tokens(reference), _rouge_tokens(prediction)
    if not target or not predicted:
        return 0.0
    lcs = lcs_length(target, predicted)
    return fmeasure(lcs / len(predicted), lcs / len(target))


@lru_cache(maxsize=1)
def _stemming_tokenizer():
    """rouge-score's tokenizer with nltk's Porter stemmer, what RougeScorer(use_stemmer=True) uses,
    loaded without the rest of nltk where that works (see `_nltk_init_skipped`)."""
    try:
        with _nltk_init_skipped():
            from rouge_score import tokenizers
            return tokenizers.DefaultTokenizer(use_stemmer=True)
    except ImportError:  # a future nltk whose stemmer needs its package's __init__: load it whole
        from rouge_score import tokenizers
        return tokenizers.DefaultTokenizer(use_stemmer=True)


@contextmanager
def _nltk_init_skipped():
    """While rouge-score's tokenizer loads, `nltk` and `nltk.stem` are empty packages in sys.modules
    (their paths set, their __init__ not run), so only the stemmer's own modules load (porter.py
    and the three small modules it imports). Why: any nltk import first runs nltk's __init__, which
    imports all of nltk, ~1.5 CPU s, a fifth of a FOLDOC `eval lm`. Afterwards every nltk and
    rouge_score module loaded meanwhile leaves sys.modules again, so a later `import nltk` or
    rouge_score anywhere loads them whole and as usual; the tokenizer made meanwhile keeps its own
    copy of the stemmer. Nothing is done when nltk is already imported (nothing to save)."""
    import importlib.util
    import sys
    if "nltk" in sys.modules or importlib.util.find_spec("nltk") is None:
        yield
        return
    before = set(sys.modules)
    try:
        for name in ("nltk", "nltk.stem"):
            sys.modules[name] = importlib.util.module_from_spec(importlib.util.find_spec(name))
        yield
    finally:
        for name in set(sys.modules) - before:
            if name.split(".")[0] in ("nltk", "rouge_score"):
                module = sys.modules.pop(name)
                parent, _, child = name.rpartition(".")
                if getattr(sys.modules.get(parent), child, None) is module:
                    delattr(sys.modules[parent], child)


@lru_cache(maxsize=65536)
def _rouge_tokens(text: str) -> tuple[str, ...]:
    """rouge-score's tokens of `text` with its Porter stemmer, as `rouge` reads them."""
    return tuple(_stemming_tokenizer().tokenize(text))


def lcs_length(a, b) -> int:
    """Length of the longest common subsequence of two token sequences, bit-parallel (Hyyrö 2004,
    after Allison & Dix 1986): bit i of `v` is cleared once a[i] is matched; one integer addition per
    token of `b` replaces a row of the dynamic-programming table."""
    positions: dict = {}
    for i, token in enumerate(a):
        positions[token] = positions.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & positions.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()
