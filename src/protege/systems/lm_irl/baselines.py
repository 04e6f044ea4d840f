"""Trivial baselines beside a model's score: what a score means only shows against them.

Each is scored with the task's own metric on the same held-out prompts as the model:
- empty: the empty completion;
- most_common: the most common training completion, for every prompt;
- best_constant: the one training completion that scores best on a sample of training prompts;
- retrieval: the completion of the nearest training prompt (TF-IDF cosine, as scikit-learn's
  TfidfVectorizer with its defaults computes it; see `nearest_prompts`).
"""

import math
import re
from collections import Counter
from collections.abc import Callable

import numpy as np

from protege.data.text import TextExample

Score = Callable[[TextExample, str], float]


def _mean(score: Score, examples: list[TextExample], completions: list[str]) -> float:
    return float(np.mean([score(e, c) for e, c in zip(examples, completions)]))


def best_constant(score: Score, train: list[TextExample], candidates: int = 50, sample: int = 100,
                  seed: int = 0) -> str:
    """Among the `candidates` most common training completions, the one with the best mean score on
    `sample` training examples (drawn with `seed`); chosen on training data only."""
    pool = [c for c, _ in Counter(e.completion for e in train).most_common(candidates)]
    rng = np.random.default_rng(seed)
    picked = [train[i] for i in rng.choice(len(train), min(sample, len(train)), replace=False)]
    means = [_mean(score, picked, [c] * len(picked)) for c in pool]
    return pool[int(np.argmax(means))]  # the first (most common) among equals


WORD = re.compile(r"(?u)\b\w\w+\b")
"""TfidfVectorizer's default token pattern: words of two or more word characters"""


def nearest_prompts(train_prompts: list[str], prompts: list[str]) -> tuple[list[int], str]:
    """Index of the nearest training prompt for each prompt (TF-IDF cosine; the first among equals),
    and the method's name."""
    return [int(row.argmax()) for row in tfidf_similarities(train_prompts, prompts)], "tfidf"


def tfidf_similarities(train_prompts: list[str], prompts: list[str]):
    """For each prompt, its TF-IDF cosine similarity to every training prompt (float64 rows). The same
    numbers, bit for bit, as scikit-learn's `TfidfVectorizer().fit(train_prompts)` (lowercased words,
    vocabulary sorted, raw counts times the smoothed idf ln((1 + n) / (1 + df)) + 1, rows scaled to
    unit length) and the sparse product `transform(prompts) @ transform(train_prompts).T`, whose
    sums run over each prompt's words in vocabulary order (tested against scikit-learn). Written out
    because importing scikit-learn (and the scipy it loads) costs more CPU than the whole evaluation
    of a small model."""
    train_counts = [Counter(WORD.findall(p.lower())) for p in train_prompts]
    vocabulary = {word: j for j, word in enumerate(sorted(set().union(*train_counts)))}
    df = np.zeros(len(vocabulary))
    for counts in train_counts:
        df[[vocabulary[w] for w in counts]] += 1
    idf = np.log(np.float64(len(train_prompts) + 1) / (df + 1.0)) + 1.0
    postings: list[list[tuple[int, float]]] = [[] for _ in vocabulary]  # word -> (training prompt, weight)
    for k, counts in enumerate(train_counts):
        for j, weight in _unit_tfidf(counts, vocabulary, idf):
            postings[j].append((k, weight))
    columns = [(np.array([k for k, _ in p], dtype=np.int64), np.array([w for _, w in p])) for p in postings]
    for prompt in prompts:
        similarity = np.zeros(len(train_prompts))
        for j, weight in _unit_tfidf(Counter(WORD.findall(prompt.lower())), vocabulary, idf):
            rows, train_weights = columns[j]
            similarity[rows] += weight * train_weights
        yield similarity


def _unit_tfidf(counts: Counter, vocabulary: dict[str, int], idf: np.ndarray) -> list[tuple[int, float]]:
    """(word index, weight) in vocabulary order: count x idf over the row's l2 norm (words outside the
    vocabulary dropped; an empty row stays empty), summed in scikit-learn's order."""
    row = sorted((vocabulary[w], c * float(idf[vocabulary[w]])) for w, c in counts.items() if w in vocabulary)
    norm = 0.0
    for _, weight in row:
        norm += weight * weight
    norm = math.sqrt(norm)
    return [(j, weight / norm) for j, weight in row]


def trivial_baselines(score: Score, train: list[TextExample], examples: list[TextExample],
                      seed: int = 0) -> dict:
    """{"baseline/<name>": mean task score on `examples`} for the four baselines above."""
    n = len(examples)
    common = Counter(e.completion for e in train).most_common(1)[0][0]
    nearest, method = nearest_prompts([e.prompt for e in train], [e.prompt for e in examples])
    return {"baseline/empty": _mean(score, examples, [""] * n),
            "baseline/most_common": _mean(score, examples, [common] * n),
            "baseline/best_constant": _mean(score, examples, [best_constant(score, train, seed=seed)] * n),
            f"baseline/retrieval_{method}": _mean(score, examples, [train[i].completion for i in nearest])}
