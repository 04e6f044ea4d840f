"""Trivial baselines on a hand-made task whose every score is worked out by hand."""

import pytest

from protege.data.text import TextExample as E
from protege.systems.lm_irl.baselines import trivial_baselines
from protege.systems.lm_irl.evaluate import baselines

TRAIN = [E("red apple", "fruit"), E("green apple", "fruit"), E("blue car", "vehicle"),
         E("fast truck", "red vehicle"), E("slow bike", "blue vehicle")]
EVAL = [E("green apple tart", "fruit"), E("slow bike ride", "blue vehicle"), E("fast truck", "vehicle")]


def contained(example, completion):  # a metric under which "vehicle" beats the more common "fruit"
    return float(completion != "" and completion in example.completion)


def test_baselines_by_hand():
    got = trivial_baselines(contained, TRAIN, EVAL)
    assert got == {"baseline/empty": 0.0,
                   "baseline/most_common": pytest.approx(1 / 3),  # "fruit": right on the tart only
                   "baseline/best_constant": pytest.approx(2 / 3),  # "vehicle": 3/5 on train
                   # nearest: green apple -> fruit (1), slow bike -> blue vehicle (1), fast truck ->
                   # red vehicle, not inside "vehicle" (0)
                   "baseline/retrieval_tfidf": pytest.approx(2 / 3)}


def test_baselines_under_the_task_metric():
    exact = [E("What is 2 plus 3?", "5"), E("What is 2 plus 3?", "5"), E("What is 1 plus 1?", "2")]
    got = baselines("text", exact, [E("What is 2 plus 3?", "5")], seed=0)  # ROUGE-L
    assert got["baseline/empty"] == 0.0 and got["baseline/most_common"] == 1.0
    assert got["baseline/retrieval_tfidf"] == 1.0
