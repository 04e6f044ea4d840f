"""Trivial baselines beside a model's score: what a score means only shows against them.

Each is scored with the task's own metric on the same held-out prompts as the model:
- empty: the empty completion;
- most_common: the most common training completion, for every prompt;
- best_constant: the one training completion that scores best on a sample of training prompts;
- retrieval: the completion of the nearest training prompt (TF-IDF cosine when scikit-learn is
  installed, else character 3-gram Jaccard; the key names which).
"""

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


def nearest_prompts(train_prompts: list[str], prompts: list[str]) -> tuple[list[int], str]:
    """Index of the nearest training prompt for each prompt, and the method's name."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError:
        def grams(text):
            text = f"  {text.lower()} "
            return {text[i:i + 3] for i in range(len(text) - 2)}
        train_grams = [grams(p) for p in train_prompts]
        nearest = []
        for p in prompts:
            g = grams(p)
            nearest.append(int(np.argmax([len(g & t) / max(1, len(g | t)) for t in train_grams])))
        return nearest, "char3gram"
    vectorizer = TfidfVectorizer().fit(train_prompts)
    similarity = vectorizer.transform(prompts) @ vectorizer.transform(train_prompts).T  # rows are unit: cosine
    return [int(np.asarray(row.todense()).argmax()) for row in similarity], "tfidf"


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
