"""Trivial baselines on a hand-made task whose every score is worked out by hand."""

import builtins

import pytest

from protege.data.text import TextExample as E
from protege.systems.lm_irl.baselines import trivial_baselines
from protege.systems.lm_irl.evaluate import baselines

TRAIN = [E("red apple", "fruit"), E("green apple", "fruit"), E("blue car", "vehicle"),
         E("fast truck", "red vehicle"), E("slow bike", "blue vehicle")]
EVAL = [E("green apple tart", "fruit"), E("slow bike ride", "blue vehicle"), E("fast truck", "vehicle")]


def contained(example, completion):  # a metric under which "vehicle" beats the more common "fruit"
    return float(completion != "" and completion in example.completion)


@pytest.mark.parametrize("sklearn", [True, False])
def test_baselines_by_hand(monkeypatch, sklearn):
    if not sklearn:  # the fallback: character 3-gram overlap
        real_import = builtins.__import__
        monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(
            ImportError(name)) if name.startswith("sklearn") else real_import(name, *a, **k))
    got = trivial_baselines(contained, TRAIN, EVAL)
    method = "tfidf" if sklearn else "char3gram"
    assert got == {"baseline/empty": 0.0,
                   "baseline/most_common": pytest.approx(1 / 3),  # "fruit": right on the tart only
                   "baseline/best_constant": pytest.approx(2 / 3),  # "vehicle": 3/5 on train
                   # nearest: green apple -> fruit (1), slow bike -> blue vehicle (1), fast truck ->
                   # red vehicle, not inside "vehicle" (0)
                   f"baseline/retrieval_{method}": pytest.approx(2 / 3)}


def test_baselines_under_the_task_metric():
    exact = [E("What is 2 plus 3?", "5"), E("What is 2 plus 3?", "5"), E("What is 1 plus 1?", "2")]
    got = baselines("text", exact, [E("What is 2 plus 3?", "5")], seed=0)  # ROUGE-L
    assert got["baseline/empty"] == 0.0 and got["baseline/most_common"] == 1.0
    assert got["baseline/retrieval_tfidf"] == 1.0
