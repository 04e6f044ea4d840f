"""The simulated step annotator on arithmetic solutions, and the marks file's validation."""

import json
import random

import pytest

from protege.core.errors import UserError
from protege.worlds.text import arithmetic
from protege.worlds.text.step_marks import (
    mark_solution,
    read_marks,
    simulated_marks,
    solution_steps,
    write_marks,
)

PROMPT = "Ava has 7 apples. Ava buys 5 more and then eats 3. How many apples does Ava have now?"  # a=7 b=5 c=3


def kinds(completion: str) -> list[str]:
    return [m.kind for m in mark_solution(PROMPT, completion).marks]


def test_right_steps_are_progress_and_wrong_ones_regress():
    assert kinds("7 + 5 = 12. 12 - 3 = 9. The answer is 9.") == ["progress"] * 3
    assert kinds("First 7 - 3 = 4. Then 4 + 5 = 9. The answer is 9.") == ["progress"] * 3
    assert kinds("7 + 5 = 13. 13 - 3 = 10. The answer is 10.") == ["regress"] * 3  # a slip carries on
    assert kinds("7 + 5 = 12. 12 - 3 = 8. The answer is 8.") == ["progress", "regress", "regress"]
    assert kinds("7 + 5 = 12. 12 - 3 = 9. The answer is 10.") == ["progress", "progress", "regress"]
    assert kinds("8 + 5 = 13. 13 - 3 = 10. The answer is 10.") == ["regress"] * 3  # misread operand


def test_marks_end_where_each_step_ends():
    text = "Start: 7. Gain 5: 7 + 5 = 12. Lose 3: 12 - 3 = 9. The answer is 9."
    ends = [m.end for m in mark_solution(PROMPT, text).marks]
    assert [text[:e] for e in ends] == ["Start: 7. Gain 5: 7 + 5 = 12.",
                                        "Start: 7. Gain 5: 7 + 5 = 12. Lose 3: 12 - 3 = 9.", text]
    assert solution_steps("no steps at all") == []


def test_simulated_solutions_are_marked_consistently_with_their_answers():
    solutions = simulated_marks(60, 3, seed=1, error_prob=0.5)
    assert len(solutions) == 180
    assert 0.25 < sum(not s.correct for s in solutions) / len(solutions) < 0.75
    for s in solutions:
        assert s.correct == arithmetic.is_correct(s.prompt, s.completion)
        assert len(s.marks) == 3  # two equations and the answer, in every template
        assert (s.marks[-1].kind == "progress") == s.correct
        assert s.correct == all(m.kind == "progress" for m in s.marks)


def test_annotator_noise_drops_and_flips_marks():
    rng = random.Random(0)
    text = "7 + 5 = 12. 12 - 3 = 9. The answer is 9."
    marked = [mark_solution(PROMPT, text, rng, miss=0.3, flip=0.2) for _ in range(300)]
    counts = [len(m.marks) for m in marked]
    flipped = sum(k.kind == "regress" for m in marked for k in m.marks) / sum(counts)
    assert 0.6 < sum(counts) / (3 * 300) < 0.8 and 0.12 < flipped < 0.28


def test_marks_file_round_trip(tmp_path):
    solutions = simulated_marks(5, 2, seed=0)
    write_marks(solutions, tmp_path / "marks.jsonl")
    assert read_marks(tmp_path / "marks.jsonl") == solutions


GOOD = {"prompt": PROMPT, "completion": "7 + 5 = 12. The answer is 9.", "correct": True,
        "marks": [{"end": 11, "kind": "progress"}, {"end": 28, "kind": "progress"}]}


@pytest.mark.parametrize("change, expected", [
    (lambda r: r["marks"][1].update(kind="better"), "line 2: field marks[1].kind: unknown kind 'better' (valid: progress, regress)"),
    (lambda r: r["marks"][1].update(end=29), "line 2: field marks[1].end: 29 is outside the completion"),
    (lambda r: r["marks"][1].update(end=11), "line 2: field marks[1].end: 11 is outside the completion"),
    (lambda r: r["marks"][0].update(end="11"), "line 2: field marks[0]: field 'end' must be int, got str"),
    (lambda r: r["marks"][0].pop("kind"), "line 2: field marks[0]: missing field 'kind'"),
    (lambda r: r.pop("correct"), "line 2: missing field 'correct'"),
    (lambda r: r.update(marks={"end": 3}), "line 2: field 'marks' must be list, got dict"),
])
def test_malformed_marks_are_refused_with_file_line_and_field(tmp_path, change, expected):
    bad = json.loads(json.dumps(GOOD))
    change(bad)
    path = tmp_path / "marks.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(UserError) as info:
        read_marks(path)
    assert str(info.value).startswith(f"{path} {expected}"), str(info.value)


def test_marks_file_that_is_not_json_or_missing_is_refused(tmp_path):
    path = tmp_path / "marks.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{oops\n")
    with pytest.raises(UserError, match=r"marks.jsonl line 2: invalid JSON"):
        read_marks(path)
    with pytest.raises(UserError, match="does not exist"):
        read_marks(tmp_path / "none.jsonl")
