"""MBR selection against a naive per-position reference."""

import random
from collections import Counter

import pytest

from protege.eval.mbr import expected_utilities, mbr_pick
from protege.eval.text_metrics import rouge_l


def naive(candidates, utility):
    return [sum(utility(a, b) for j, b in enumerate(candidates) if j != i) for i, a in enumerate(candidates)]


def test_expected_utilities_equal_the_per_position_sum():
    rng = random.Random(0)
    words = ["a", "language", "for", "the", "protocol", "network", "C"]
    candidates = [" ".join(rng.choices(words, k=rng.randint(0, 6))) for _ in range(12)]
    candidates += candidates[:5]  # repeats, as samples have
    utility = lambda h, r: rouge_l(r, h)
    assert expected_utilities(candidates, utility) == pytest.approx(naive(candidates, utility))
    asymmetric = lambda h, r: len(set(h.split()) & set(r.split())) / (1 + len(h))
    assert expected_utilities(candidates, asymmetric) == pytest.approx(naive(candidates, asymmetric))


def test_exact_match_utility_is_a_majority_vote_with_ties_to_the_first():
    same = lambda h, r: float(h == r)
    candidates = ["12", "7", "7", "12", "9", "7"]
    assert candidates[mbr_pick(candidates, same)] == Counter(candidates).most_common(1)[0][0] == "7"
    assert mbr_pick(["5", "6", "6", "5"], same) == 0  # a tie goes to the first listed (the greedy output)
    assert mbr_pick(["only"], same) == 0
    with pytest.raises(ValueError):
        mbr_pick([], same)


def test_the_central_candidate_wins_under_rouge():
    candidates = ["a language for the web", "a language for graphics", "the country code for Laos",
                  "a language for the web pages"]
    assert mbr_pick(candidates, lambda h, r: rouge_l(r, h)) in (0, 3)
    assert mbr_pick(candidates, lambda h, r: rouge_l(r, h)) != 2
