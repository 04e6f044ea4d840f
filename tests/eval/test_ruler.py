"""RULER's scoring on hand-made cases: each expected value worked out by hand from RULER's definitions
(substring containment, case-insensitive; all = fraction of references, part = any reference)."""

import pytest

from protege.eval.ruler import (
    postprocess_pred,
    sample_match_all,
    sample_match_part,
    string_match_all,
    string_match_part,
)

# (prediction, references, match_all, match_part)
CASES = [
    ("The special magic number is 4887266.", ["4887266"], 1.0, 1.0),
    ("", ["4887266"], 0.0, 0.0),
    ("4887267", ["4887266"], 0.0, 0.0),                       # one digit off: no credit
    ("after-ATTENDED", ["After-attended"], 1.0, 1.0),         # case does not matter
    ("1234 and 5678", ["1234", "5678", "9999", "0000"], 0.5, 1.0),
    ("12345", ["123456"], 0.0, 0.0),                          # a reference longer than the answer
    ("x123456x", ["12345"], 1.0, 1.0),                        # containment, not word match
    ("AKMHE, YFKFV", ["AKMHE", "YFKFV", "AZCTX"], 2 / 3, 1.0),
    ("none of them", ["a b", "c"], 0.0, 0.0),
    ("a b c", ["a b", "c"], 1.0, 1.0),
    ("a  b", ["a b"], 0.0, 0.0),                              # whitespace is not normalised
]


@pytest.mark.parametrize("pred, refs, expected_all, expected_part", CASES)
def test_per_sample_matches(pred, refs, expected_all, expected_part):
    assert sample_match_all(pred, refs) == pytest.approx(expected_all)
    assert sample_match_part(pred, refs) == expected_part


def test_task_scores_are_percent_means_rounded_to_two_decimals():
    preds = [c[0] for c in CASES]
    refs = [c[1] for c in CASES]
    # all: (1 + 0 + 0 + 1 + .5 + 0 + 1 + 2/3 + 0 + 1 + 0) / 11 = 5.1667 / 11 = 0.469697 -> 46.97
    assert string_match_all(preds, refs) == 46.97
    # part: (1 + 0 + 0 + 1 + 1 + 0 + 1 + 1 + 0 + 1 + 0) / 11 = 6 / 11 -> 54.55
    assert string_match_part(preds, refs) == 54.55
    assert string_match_all(["1", "0", "0"], [["1"], ["1"], ["1"]]) == 33.33


def test_part_is_rulers_any_reference_not_lm_evals_max_over_samples():
    """RULER: mean over samples of 'any reference found' (NVIDIA/RULER #15). lm-evaluation-harness'
    version takes the max over samples of the all-fraction and divides by the sample count, which
    here would give max(0.5, 0) / 2 = 0.25 instead."""
    assert string_match_part(["a", "x"], [["a", "b"], ["c"]]) == 50.0
    assert string_match_all(["a", "x"], [["a", "b"], ["c"]]) == 25.0


def test_postprocess_strips_and_turns_control_characters_into_newlines():
    assert postprocess_pred("  \t 7654321 \n") == "7654321"
    assert postprocess_pred("foo\x00bar\x1fbaz") == "foo\nbar\nbaz"
    assert postprocess_pred("\x07answer\x07") == "answer"
    assert postprocess_pred("caf\u00e9 \x7f") == "caf\u00e9 \x7f"   # DEL and non-ASCII are kept


def test_bad_input():
    with pytest.raises(ValueError, match="at least one reference"):
        sample_match_all("x", [])
    with pytest.raises(ValueError, match="as many predictions"):
        string_match_all(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="as many predictions"):
        string_match_part([], [])
