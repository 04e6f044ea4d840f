"""Text metrics: diversity over several samples of one prompt (Self-BLEU, distinct-n) and ROUGE.

Self-BLEU comes from sacrebleu and ROUGE from Google's rouge-score; distinct-n is a two-line count.
"""

from functools import lru_cache

import numpy as np


def self_bleu(samples: list[str]) -> float:
    """Mean sentence BLEU (0-100) of each sample against the others; lower means more diverse."""
    import sacrebleu
    if len(samples) < 2:
        return float("nan")
    scores = [sacrebleu.sentence_bleu(s, samples[:i] + samples[i + 1:]).score
              for i, s in enumerate(samples)]
    return float(np.mean(scores))


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
