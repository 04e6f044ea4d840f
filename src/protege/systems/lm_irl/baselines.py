"""Trivial baselines beside a model's score: what a score means only shows against them.

Each is scored with the task's own metric on the same held-out prompts as the model:
- empty: the empty completion;
- most_common: the most common training completion, for every prompt;
- best_constant: the one training completion that scores best on a sample of training prompts;
- retrieval: the completion of the nearest training prompt (TF-IDF cosine, as scikit-learn's
  TfidfVectorizer with its defaults computes it; see `nearest_prompts`);
and, for a task whose prompt names a subject the reference often repeats (FOLDOC's term):
- <subject>: the subject itself, copied from the prompt;
- <subject>+best_constant: the subject followed by the training completion that scores best after
  it (chosen on training data as best_constant is). On FOLDOC this is the strongest of them.
"""

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
    train_words = [WORD.findall(p.lower()) for p in train_prompts]
    vocabulary = {word: j for j, word in enumerate(sorted({w for words in train_words for w in words}))}
    train_rows, train_cols, train_counts = _counts(train_words, vocabulary)
    df = np.bincount(train_cols, minlength=len(vocabulary)).astype(np.float64)
    idf = np.log(np.float64(len(train_prompts) + 1) / (df + 1.0)) + 1.0
    train_weights = _unit_rows(train_rows, train_counts * idf[train_cols], len(train_prompts))
    by_word = np.argsort(train_cols, kind="stable")  # each word's training prompts and weights
    starts = np.searchsorted(train_cols[by_word], np.arange(len(vocabulary) + 1))
    rows, cols, counts = _counts([WORD.findall(p.lower()) for p in prompts], vocabulary)
    weights = _unit_rows(rows, counts * idf[cols], len(prompts))
    ends = np.searchsorted(rows, np.arange(len(prompts) + 1))
    postings: dict[int, tuple] = {}  # word -> (its training prompts, their weights), gathered once
    for i in range(len(prompts)):
        similarity = np.zeros(len(train_prompts))
        for j, weight in zip(cols[ends[i]:ends[i + 1]].tolist(), weights[ends[i]:ends[i + 1]].tolist()):
            if j not in postings:
                postings[j] = _postings(train_rows[by_word[starts[j]:starts[j + 1]]],
                                        train_weights[by_word[starts[j]:starts[j + 1]]], len(train_prompts))
            train_rows_j, train_weights_j = postings[j]
            similarity[train_rows_j] += weight * train_weights_j
        yield similarity


def _postings(rows: np.ndarray, weights: np.ndarray, n_rows: int) -> tuple:
    """(where, weights) to add one word's weights at: its rows, or for a word in most rows every row
    with 0 where it is absent (a contiguous add is several times faster than a scattered one, and
    adding weight * 0.0 = +0.0 leaves every similarity, all >= 0, bit for bit unchanged)."""
    if len(rows) * 2 < n_rows:
        return rows, weights
    dense = np.zeros(n_rows)
    dense[rows] = weights
    return slice(None), dense


def _counts(documents: list[list[str]], vocabulary: dict[str, int]):
    """(document, word index, count) of every distinct word of each document that is in the
    vocabulary, ordered by document, then by word index (scikit-learn's sorted CSR rows)."""
    words = np.fromiter((vocabulary.get(w, -1) for ws in documents for w in ws), dtype=np.int64)
    document = np.repeat(np.arange(len(documents), dtype=np.int64), [len(ws) for ws in documents])
    known = words >= 0
    keys, counts = np.unique(document[known] * len(vocabulary) + words[known], return_counts=True)
    return keys // max(1, len(vocabulary)), keys % max(1, len(vocabulary)), counts


def _unit_rows(rows: np.ndarray, weights: np.ndarray, n_rows: int) -> np.ndarray:
    """`weights` over the l2 norm of their row (an empty row stays empty), the squares summed one
    after another in row order as scikit-learn does (numpy's sum pairs them up: other roundings)."""
    starts = np.searchsorted(rows, np.arange(n_rows + 1))
    width = int(np.diff(starts).max(initial=0))
    squares = np.zeros((n_rows, width + 1))  # padding with zeros leaves a sequential sum unchanged
    squares[rows, np.arange(len(rows)) - starts[rows]] = weights * weights
    norms = np.sqrt(np.cumsum(squares, axis=1)[:, -1])
    return weights / norms[rows]


Subject = tuple[str, Callable[[TextExample], str]]
"""(its name, what it is for an example): e.g. ("term", foldoc.term_of)"""


CONSTANT_SEARCH = (50, 100)
"""(candidates, sample) of `best_constant` in `eval lm`: cheap next to evaluating a small model"""


def baseline_completions(score: Score, train: list[TextExample], examples: list[TextExample],
                         seed: int = 0, subject: Subject | None = None,
                         constant_search: tuple[int, int] = CONSTANT_SEARCH) -> dict[str, list[str]]:
    """{baseline name: its completion for each of `examples`}; constants are chosen on `train`, among
    `constant_search[0]` candidates scored on `constant_search[1]` training examples (a larger search
    finds a stronger constant). The retrieval baseline is named `retrieval_<method>`."""
    n = len(examples)
    candidates, sample = constant_search
    common = Counter(e.completion for e in train).most_common(1)[0][0]
    nearest, method = nearest_prompts([e.prompt for e in train], [e.prompt for e in examples])
    completions = {"empty": [""] * n, "most_common": [common] * n,
                   "best_constant": [best_constant(score, train, candidates, sample, seed)] * n,
                   f"retrieval_{method}": [train[i].completion for i in nearest]}
    if subject is not None:
        name, of = subject
        after = best_constant(lambda e, c: score(e, f"{of(e)} {c}"), train, candidates, sample, seed)
        completions[name] = [of(e) for e in examples]
        completions[f"{name}+best_constant"] = [f"{of(e)} {after}" for e in examples]
    return completions


def trivial_baselines(score: Score, train: list[TextExample], examples: list[TextExample],
                      seed: int = 0, subject: Subject | None = None) -> dict:
    """{"baseline/<name>": mean task score on `examples`} for the baselines above."""
    return {f"baseline/{name}": _mean(score, examples, outs)
            for name, outs in baseline_completions(score, train, examples, seed, subject).items()}
