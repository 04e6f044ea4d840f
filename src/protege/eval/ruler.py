"""RULER's scoring (arXiv:2404.06654), deterministic, no judge model.

RULER scores a prediction by case-insensitive substring containment of the reference strings, after
`postprocess_pred` (strip, control characters to newlines, strip). Per sample, with refs r_1..r_m:

    match_all(pred, refs)  = (1/m) * sum_j [r_j.lower() in pred.lower()]     (every reference counts)
    match_part(pred, refs) = max_j [r_j.lower() in pred.lower()]             (any reference suffices)

and a task's score is 100 * mean over samples, rounded to 2 decimals (NVIDIA/RULER
scripts/eval/synthetic/constants.py, `string_match_all`, `string_match_part`). lm-evaluation-harness'
`string_match_part` instead takes the max over samples of the match_all fraction and divides by the
number of samples (NVIDIA/RULER #15); RULER's definition is the one implemented here.
"""

import re

_CONTROL = re.compile(r"[\x00-\x1f]")

METRIC = {"niah": "string_match_all", "variable_tracking": "string_match_all",
          "common_words_extraction": "string_match_all", "freq_words_extraction": "string_match_all",
          "qa": "string_match_part"}
"""RULER's metric per task family (its `TASKS` table)"""


def postprocess_pred(text: str) -> str:
    """RULER's `postprocess_pred`: strip, every control character (\\x00-\\x1f) to a newline, strip."""
    return _CONTROL.sub("\n", text.strip()).strip()


def _check(refs: list[str]) -> None:
    if not refs:  # RULER divides by len(ref) (all) or takes max() over it (part): both fail when empty
        raise ValueError("a sample needs at least one reference string")


def sample_match_all(pred: str, refs: list[str]) -> float:
    """Fraction of the references contained in the prediction (case-insensitive), in [0, 1]."""
    _check(refs)
    return sum(1.0 if r.lower() in pred.lower() else 0.0 for r in refs) / len(refs)


def sample_match_part(pred: str, refs: list[str]) -> float:
    """1.0 when any reference is contained in the prediction (case-insensitive), else 0.0."""
    _check(refs)
    return max(1.0 if r.lower() in pred.lower() else 0.0 for r in refs)


def string_match_all(preds: list[str], refs: list[list[str]]) -> float:
    """RULER's task score in percent (2 decimals): mean over samples of `sample_match_all`."""
    if len(preds) != len(refs) or not preds:
        raise ValueError(f"need as many predictions as reference lists (>= 1), got {len(preds)} "
                         f"and {len(refs)}")
    return round(sum(sample_match_all(p, r) for p, r in zip(preds, refs)) / len(preds) * 100, 2)


def string_match_part(preds: list[str], refs: list[list[str]]) -> float:
    """RULER's task score in percent (2 decimals): mean over samples of `sample_match_part`."""
    if len(preds) != len(refs) or not preds:
        raise ValueError(f"need as many predictions as reference lists (>= 1), got {len(preds)} "
                         f"and {len(refs)}")
    return round(sum(sample_match_part(p, r) for p, r in zip(preds, refs)) / len(preds) * 100, 2)


SAMPLE_SCORE = {"string_match_all": sample_match_all, "string_match_part": sample_match_part}
TASK_SCORE = {"string_match_all": string_match_all, "string_match_part": string_match_part}
