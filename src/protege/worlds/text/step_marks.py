"""Progress/regress marks on the steps of arithmetic solutions: a simulated annotator and the file.

A solution's steps (the chain format of `arithmetic.SOLUTIONS`, parsed the same way from any text):
every equation "A op B = C" (with a following period) is one step, and the final statement "The
answer is N." is the last step. The wording between equations belongs to the step it precedes.
A step's intermediate value is right when it is what a correct chain has at that point:

    equation 1      C == a + b (when op is +) or C == a - c (when op is -): the two valid first steps
    equation k > 1  C == a + b - c
    answer          N == a + b - c

The simulated annotator marks a step "progress" when its value is right and "regress" when it is
wrong (arXiv:2211.11602's marks, on text); it can miss marks and flip them (annotator noise).

The marks file (JSONL, one solution a line; `read_marks` checks every field):
    {"prompt": str, "completion": str, "correct": bool,
     "marks": [{"end": int, "kind": "progress" | "regress"}, ...]}
`end` is a character offset into the completion (1..len), strictly increasing over the marks: mark k
compares the completion cut at marks[k-1].end (the empty completion for k = 0) with the completion
cut at marks[k].end. `correct` says whether the final answer is right (what an outcome reward sees).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from protege.core.errors import UserError
from protege.data.text import read_jsonl
from protege.worlds.text import arithmetic

KINDS = ("progress", "regress")
EQUATION = re.compile(r"(-?\d+)\s*([+-])\s*(-?\d+)\s*=\s*(-?\d+)\.?")
ANSWER = re.compile(r"answer is (-?\d+)\.?")


@dataclass(frozen=True)
class Mark:
    end: int
    """character offset into the completion where the marked step ends"""
    kind: str
    """"progress" or "regress\""""


@dataclass(frozen=True)
class MarkedSolution:
    prompt: str
    completion: str
    marks: tuple[Mark, ...]
    correct: bool
    """the final answer is right"""


@dataclass(frozen=True)
class Step:
    end: int
    """character offset just past the step"""
    value: int
    """its intermediate value (C of an equation, N of the answer)"""
    op: str
    """"+", "-" or "answer\""""


def solution_steps(completion: str) -> list[Step]:
    """The steps of a completion, in order: its equations, then (if any) its final answer."""
    steps = [Step(m.end(), int(m.group(4)), m.group(2)) for m in EQUATION.finditer(completion)]
    answers = list(ANSWER.finditer(completion))
    if answers:
        last = answers[-1]
        steps = [s for s in steps if s.end <= last.start()] + [Step(last.end(), int(last.group(1)), "answer")]
    return steps


def problem_numbers(prompt: str) -> tuple[int, int, int] | None:
    """(a, b, c) of a built-in prompt: start with a, gain b, lose c (the rule of
    `arithmetic.expected_answer`: the "started with" template states a last)."""
    numbers = [int(n) for n in re.findall(r"\d+", prompt)]
    if len(numbers) != 3:
        return None
    b, c, a = numbers if "started with" in prompt else (numbers[1], numbers[2], numbers[0])
    return a, b, c


def step_is_right(step: Step, index: int, numbers: tuple[int, int, int]) -> bool:
    a, b, c = numbers
    if step.op == "answer" or index > 0:
        return step.value == a + b - c
    return step.value == (a + b if step.op == "+" else a - c)


def mark_solution(prompt: str, completion: str, rng: random.Random | None = None, miss: float = 0.0,
                  flip: float = 0.0) -> MarkedSolution:
    """The simulated annotator: progress on a right step, regress on a wrong one; each mark is
    missed with probability `miss` and flipped with probability `flip`."""
    numbers = problem_numbers(prompt)
    if numbers is None:
        raise UserError(f"not a built-in arithmetic prompt (needs three numbers): {prompt[:80]!r}")
    equations = 0
    marks = []
    for step in solution_steps(completion):
        right = step_is_right(step, equations, numbers)
        equations += step.op != "answer"
        if rng is not None and rng.random() < miss:
            continue
        if rng is not None and rng.random() < flip:
            right = not right
        marks.append(Mark(step.end, "progress" if right else "regress"))
    return MarkedSolution(prompt, completion, tuple(marks), arithmetic.is_correct(prompt, completion))


# solutions with errors, as a model makes them ----------------------------------------------------
def corrupted_solution(values: dict, rng: random.Random, error_prob: float) -> str:
    """A solution from one of the task's templates in which, with probability `error_prob`, one
    step goes wrong and the error carries on: a slip in the result (C off by 1..3), a misread
    operand (A or B off by 1..3, the result computed from it), or a wrong final answer."""
    template = rng.choice(arithmetic.SOLUTIONS)
    v = dict(values)
    if rng.random() < error_prob:
        kind = rng.choice(["slip1", "slip2", "operand", "answer"])
        delta = rng.choice([-3, -2, -1, 1, 2, 3])
        first = "z" if template.startswith("First") else "x"  # the template's first intermediate
        if kind == "operand" and v["a"] + delta > 0:
            v["a"] += delta
            v["x"], v["z"] = v["a"] + v["b"], v["a"] - v["c"]
            v["y"] = v["x"] - v["c"]
        elif kind == "slip1" or kind == "operand":
            v[first] += delta
            v["y"] = v["x"] - v["c"] if first == "x" else v["z"] + v["b"]
        else:
            v["y"] += delta
        text = template.format(**v)
        if kind == "answer":  # only the final statement is wrong; the equations stay right
            right = template.format(**values)
            text = right[:right.rfind("The answer is")] + f"The answer is {v['y']}."
        return text
    return template.format(**v)


def simulated_marks(n_prompts: int, solutions_per_prompt: int, seed: int, error_prob: float = 0.5,
                    miss: float = 0.0, flip: float = 0.0,
                    exclude: set[str] | None = None) -> list[MarkedSolution]:
    """`solutions_per_prompt` marked solutions (some with errors) for each of `n_prompts` built-in
    problems drawn with `seed`; prompts in `exclude` (the held-out ones) are skipped."""
    rng = random.Random(seed)
    out = []
    seen = 0
    while seen < n_prompts:
        prompt, _, values = arithmetic.make_problem(rng)
        if exclude and prompt in exclude:
            continue
        seen += 1
        for _ in range(solutions_per_prompt):
            out.append(mark_solution(prompt, corrupted_solution(values, rng, error_prob), rng, miss, flip))
    return out


# the marks file ------------------------------------------------------------------------------------
def write_marks(solutions: list[MarkedSolution], path: Path) -> None:
    """One JSON line per solution, written atomically."""
    from protege.core.atomic import write_text_atomic
    lines = [json.dumps({"prompt": s.prompt, "completion": s.completion, "correct": s.correct,
                         "marks": [{"end": m.end, "kind": m.kind} for m in s.marks]})
             for s in solutions]
    write_text_atomic(Path(path), "".join(line + "\n" for line in lines))


def read_marks(path: Path) -> list[MarkedSolution]:
    """The solutions of a marks file; any malformed line is a `UserError` naming file, line, field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"marks file {path} does not exist")
    solutions = [_solution(row, f"{path} line {number}") for number, row in
                 read_jsonl(path, "marked solutions")]
    if not solutions:
        raise UserError(f"{path}: no marked solutions")
    return solutions


def _field(row: dict, name: str, kind: type, where: str):
    if name not in row:
        raise UserError(f"{where}: missing field {name!r} (fields present: {', '.join(row) or 'none'})")
    value = row[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"{where}: field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _solution(row, where: str) -> MarkedSolution:
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected an object with fields prompt, completion, correct, marks; "
                        f"got {type(row).__name__}")
    prompt, completion = _field(row, "prompt", str, where), _field(row, "completion", str, where)
    correct = _field(row, "correct", bool, where)
    marks, last = [], 0
    for i, mark in enumerate(_field(row, "marks", list, where)):
        at = f"{where}: field marks[{i}]"
        if not isinstance(mark, dict):
            raise UserError(f"{at} must be an object with end and kind, got {type(mark).__name__}")
        end, kind = _field(mark, "end", int, at), _field(mark, "kind", str, at)
        if kind not in KINDS:
            raise UserError(f"{at}.kind: unknown kind {kind!r} (valid: {', '.join(KINDS)})")
        if not last < end <= len(completion):
            raise UserError(f"{at}.end: {end} is outside the completion ({last + 1}..{len(completion)}: "
                            f"after the previous mark, at most the completion's length)")
        marks.append(Mark(end, kind))
        last = end
    return MarkedSolution(prompt, completion, tuple(marks), correct)
