"""Built-in arithmetic word problems with chain-of-thought (GSM8K-style, small numbers).

Each problem is two steps (add then subtract, or the reverse), phrased with one of several prompt
templates and solved with one of several solution templates that differ in wording and in the
order of the steps. Many correct completions exist per prompt, so the diversity of a model's
samples is meaningful; correctness is the exact final answer ("The answer is N.").
"""

import random
import re
from functools import lru_cache

from protege.data.text import TextExample

NAMES = ["Ava", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ivy", "Jack", "Kim", "Leo"]
ITEMS = ["apples", "books", "coins", "pens", "cards", "shells", "stamps", "marbles", "cookies", "eggs"]
GAINS = ["buys", "finds", "gets", "picks up", "wins"]
LOSSES = ["gives away", "loses", "sells", "eats", "drops"]

PROMPTS = [
    "{name} has {a} {item}. {name} {gain} {b} more and then {loss} {c}. How many {item} does {name} have now?",
    "At first {name} had {a} {item}. Later {name} {gain} {b} {item} and {loss} {c} {item}. How many {item} are left?",
    "{name} {gain} {b} {item} and {loss} {c} {item}. {name} started with {a} {item}. How many {item} does {name} have?",
]
SOLUTIONS = [
    "{a} + {b} = {x}. {x} - {c} = {y}. The answer is {y}.",
    "{name} starts with {a}. After getting {b} more, {name} has {a} + {b} = {x}. After losing {c}, {name} has {x} - {c} = {y}. The answer is {y}.",
    "First {a} - {c} = {z}. Then {z} + {b} = {y}. The answer is {y}.",
    "Start: {a}. Gain {b}: {a} + {b} = {x}. Lose {c}: {x} - {c} = {y}. The answer is {y}.",
]
ANSWER = re.compile(r"answer is (-?\d+)")


def make_problem(rng: random.Random) -> tuple[str, int, dict]:
    """A prompt, its answer, and the values the solution templates need."""
    a, b = rng.randint(2, 15), rng.randint(1, 9)
    c = rng.randint(1, min(9, a))  # so that subtracting first never goes negative
    values = {"name": rng.choice(NAMES), "item": rng.choice(ITEMS), "gain": rng.choice(GAINS),
              "loss": rng.choice(LOSSES), "a": a, "b": b, "c": c,
              "x": a + b, "z": a - c, "y": a + b - c}
    return rng.choice(PROMPTS).format(**values), values["y"], values


def solution(values: dict, rng: random.Random) -> str:
    return rng.choice(SOLUTIONS).format(**values)


def generate(n: int, seed: int, exclude: set[str] | None = None) -> list[TextExample]:
    """`n` examples with a random solution template each; prompts in `exclude` are skipped."""
    rng = random.Random(seed)
    examples = []
    while len(examples) < n:
        prompt, _, values = make_problem(rng)
        if exclude and prompt in exclude:
            continue
        examples.append(TextExample(prompt, solution(values, rng)))
    return examples


# Both parsers are cached: scoring asks for the same texts many times (the trivial baselines score
# 50 candidate completions against 100 training prompts, then 4 completions against each held-out one).
@lru_cache(maxsize=8192)
def answer_of(text: str) -> int | None:
    """The final answer stated in a completion, or None when there is none."""
    found = ANSWER.findall(text)
    return int(found[-1]) if found else None


@lru_cache(maxsize=8192)
def expected_answer(prompt: str) -> int | None:
    """The correct answer of a built-in prompt, recomputed from the prompt's numbers."""
    numbers = [int(n) for n in re.findall(r"\d+", prompt)]
    if len(numbers) != 3:
        return None
    b, c, a = numbers if "started with" in prompt else (numbers[1], numbers[2], numbers[0])
    return a + b - c


def is_correct(prompt: str, completion: str) -> bool:
    answer = answer_of(completion)
    return answer is not None and answer == expected_answer(prompt)
