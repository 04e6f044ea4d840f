"""Agreement statistics against values computed by hand."""

import pytest

from protege.eval.agreement import cohen_kappa, fleiss_kappa, timing_agreement


def test_cohen_kappa_hand_computed():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15.
    # p_o = 35/50 = 0.7; p_e = (25/50)(30/50) + (25/50)(20/50) = 0.3 + 0.2 = 0.5; kappa = 0.2/0.5
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_edges():
    assert cohen_kappa([1, 0, 1], [1, 0, 1]) == pytest.approx(1.0)
    # always disagreeing with balanced labels: p_o = 0, p_e = 0.5 -> -1
    assert cohen_kappa([1, 0], [0, 1]) == pytest.approx(-1.0)
    assert cohen_kappa([1, 1], [1, 1]) is None  # one category: chance agreement is already 1
    assert cohen_kappa([], []) is None
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa([1], [1, 0])


def test_fleiss_kappa_hand_computed():
    # 3 items, 3 raters, 2 categories:
    #   [3, 0]: P = (9 - 3)/6 = 1;  [2, 1]: P = (4 + 1 - 3)/6 = 1/3;  [0, 3]: P = 1
    #   P_bar = 7/9; p = (5/9, 4/9); P_e = 25/81 + 16/81 = 41/81
    #   kappa = (7/9 - 41/81) / (1 - 41/81) = (63 - 41)/(81 - 41) = 22/40
    assert fleiss_kappa([[3, 0], [2, 1], [0, 3]]) == pytest.approx(22 / 40)


def test_fleiss_kappa_wikipedia_table():
    # Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories; kappa = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_refuses_uneven_raters():
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 0], [1, 2]])
    assert fleiss_kappa([[2, 0], [2, 0]]) is None


def test_timing_agreement_hand_computed():
    a = [(3, "progress"), (10, "progress"), (12, "regress"), (20, "progress")]
    b = [(5, "progress"), (12, "progress"), (19, "regress")]
    # (3,p) matches (5,p); (10,p) matches (12,p); (12,r) has no regress within 2; (20,p) none
    assert timing_agreement(a, b) == (2, 4)
    # the other way: (5,p) <- (3,p); (12,p) <- (10,p); (19,r): nearest regress at 12, no
    assert timing_agreement(b, a) == (2, 3)
    assert timing_agreement(a, b, tolerance=0) == (0, 4)
    assert timing_agreement([], b) == (0, 0)
