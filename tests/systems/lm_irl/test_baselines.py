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


def test_a_subject_copied_from_the_prompt_and_the_best_constant_after_it():
    """FOLDOC's term baselines through `eval lm`'s own path, against a naive reference: every training
    completion scored after each training example's own term, the best one put after the held-out term."""
    from protege.eval.text_metrics import rouge_l
    train = [E("Define: Foo Bar", "(FB) Foo Bar is a network protocol."), E("Define: Baz", "Baz is a network protocol."),
             E("Define: Qux", "A language."), E("Define: Quux", "A language."), E("Define: Corge", "A language.")]
    held_out = [E("Define: Grault", "Grault is a network protocol.")]
    after = {c: sum(rouge_l(e.completion, f"{e.prompt[8:]} {c}") for e in train) for c in {e.completion for e in train}}
    best = max(after, key=after.get)
    got = baselines("foldoc", train, held_out, seed=0)
    assert got["baseline/term"] == pytest.approx(rouge_l("Grault is a network protocol.", "Grault"))
    assert got["baseline/term+best_constant"] == pytest.approx(rouge_l(held_out[0].completion, f"Grault {best}"))
    assert "baseline/term" not in baselines("text", train, held_out, seed=0)  # only FOLDOC names a term


def test_a_larger_constant_search_sees_more_candidates():
    """The default search looks at the `candidates` most common training completions only; a larger
    one finds a constant outside them (here the rare "vehicle", which beats every common one)."""
    from protege.systems.lm_irl.baselines import baseline_completions
    train = [E(f"p{i}", "fruit") for i in range(6)] + [E(f"q{i}", "red vehicle") for i in range(4)] \
        + [E(f"s{i}", "blue vehicle") for i in range(3)] + [E("r", "vehicle")]
    small = baseline_completions(contained, train, EVAL, constant_search=(3, len(train)))
    large = baseline_completions(contained, train, EVAL, constant_search=(4, len(train)))
    assert small["best_constant"][0] == "fruit" and large["best_constant"][0] == "vehicle"
