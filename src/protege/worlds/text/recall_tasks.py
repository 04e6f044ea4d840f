"""Long-context recall tasks: needle in a haystack (Gemini 1.5's form, arXiv:2403.05530) and RULER's
synthetic tasks (arXiv:2404.06654), named as lm-evaluation-harness names them.

Every task builds a prompt that ends in an answer prefix (RULER's base-model format), and the
references its answer is scored against. Needle and NIAH prompts are cut to exactly the requested
number of tokens (`haystack.exact_prompt`); the word-list tasks (ruler_cwe, ruler_fwe) grow their
list to the largest that fits, so their prompts are at most the requested length.
"""

import functools
import math
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from protege.core.errors import UserError, unknown_name
from protege.worlds.text.haystack import (
    REPEAT_NOISE,
    Prompt,
    count_tokens,
    exact_prompt,
    haystack_for,
    source_text,
    vocabulary,
)


@dataclass(frozen=True)
class Sample:
    task: str
    index: int
    length: int
    """requested prompt length in tokens"""
    depth: float | None
    """requested needle depth in [0, 1]; None where the task places its needles at random depths"""
    input: str
    """the prompt, ending in the answer prefix"""
    outputs: tuple[str, ...]
    """the references the answer is scored against"""
    tokens: int
    """the prompt's length as the model sees it"""
    depths: tuple[float, ...]
    """the depth of each needle as placed (empty for word-list tasks)"""


@dataclass(frozen=True)
class TaskSpec:
    family: str
    """RULER's task family, which picks the metric (eval/ruler.py METRIC)"""
    uses_depth: bool
    """True: the grid's depths place the needle; False: needles at random depths"""
    max_new_tokens: int
    """RULER's tokens to generate for the family"""
    build: Callable
    """(context, length, depth) -> (Prompt, references)"""


@dataclass(frozen=True)
class Context:
    tokenizer: object
    rng: random.Random
    text: str
    """the haystack source's text"""
    vocab: tuple[str, ...]
    """words keys and word lists are drawn from"""
    needles: int = 3
    """needle count of needle_multi"""
    suffix: str = ""
    """text after the answer prefix that the model was trained to see there (an lm run's newline)"""


# keys and values ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def cities() -> tuple[str, ...]:
    """City names from the IANA time-zone database (Debian's tzdata): real names, no list to keep."""
    import zoneinfo
    regions = ("Africa/", "America/", "Asia/", "Australia/", "Europe/")
    names = {z.rsplit("/", 1)[1].replace("_", " ") for z in zoneinfo.available_timezones()
             if z.startswith(regions)}
    return tuple(sorted(n for n in names if n.isascii() and n.replace(" ", "").isalpha()
                        and not n.isupper()))  # not ACT, NSW (abbreviations)


def _number(rng: random.Random) -> str:
    return str(rng.randint(10**6, 10**7 - 1))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _word(ctx: Context) -> str:
    return "-".join(ctx.rng.sample(ctx.vocab, 2))


def _distinct(make: Callable[[], str], n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        value = make()
        if value not in out:
            out.append(value)
    return out


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + ", and " + items[-1]


def _random_depths(rng: random.Random, n: int) -> list[float]:
    """n distinct depths of RULER's 40 evenly spaced ones (0 to 1)."""
    return sorted(rng.sample([i / 39 for i in range(40)], n))


def _text_stack(ctx: Context, text: str, length: int):
    return haystack_for(ctx.tokenizer, text, length, ctx.rng.randrange(len(text)))


# needle in a haystack: Gemini's form --------------------------------------------------------------
GEMINI_NEEDLE = "The special magic {city} number is: {number}."


def needle_single(ctx: Context, length: int, depth: float):
    city, number = ctx.rng.choice(cities()), _number(ctx.rng)
    head = ("A special magic number is hidden within the following text. Make sure to memorize it. "
            "I will quiz you about it afterwards.\n")
    tail = f"\nWhat is the special magic {city} number? Answer: The special magic {city} number is:"
    needle = GEMINI_NEEDLE.format(city=city, number=number)
    return exact_prompt(ctx.tokenizer, _text_stack(ctx, ctx.text, length), length, head, tail + ctx.suffix,
                        [(depth, needle)]), [number]


def needle_multi(ctx: Context, length: int, depth: None):
    """`ctx.needles` needles at evenly spaced depths; the score is the fraction recalled."""
    n = ctx.needles
    names = ctx.rng.sample(cities(), n)
    numbers = _distinct(lambda: _number(ctx.rng), n)
    head = (f"{n} special magic numbers are hidden within the following text. Make sure to memorize "
            f"them. I will quiz you about them afterwards.\n")
    query = _listing(names)
    tail = (f"\nWhat are the special magic numbers for {query}? Answer: The special magic numbers "
            f"for {query} are:")
    needles = [((i + 0.5) / n, GEMINI_NEEDLE.format(city=c, number=v))
               for i, (c, v) in enumerate(zip(names, numbers))]
    return exact_prompt(ctx.tokenizer, _text_stack(ctx, ctx.text, length), length, head, tail + ctx.suffix,
                        needles), numbers


# RULER's NIAH -------------------------------------------------------------------------------------
RULER_NEEDLE = "One of the special magic {kind} for {key} is: {value}."


def _niah(haystack: str, key: str = "words", value: str = "numbers", keys: int = 1, values: int = 1,
          queries: int = 1):
    """RULER's NIAH with `keys` keys of `values` values each, `queries` of the keys asked for. With
    depth given, the first asked needle sits at it and every other needle at a random depth."""
    def build(ctx: Context, length: int, depth: float | None):
        make = {"words": lambda: _word(ctx), "numbers": lambda: _number(ctx.rng),
                "uuids": lambda: _uuid(ctx.rng)}
        key_list = _distinct(make[key], max(keys, queries))
        value_lists = [_distinct(make[value], values) for _ in key_list]
        asked = ctx.rng.sample(range(len(key_list)), queries)
        needles = [RULER_NEEDLE.format(kind=value, key=k, value=v)
                   for k, vs in zip(key_list, value_lists) for v in vs]
        target = RULER_NEEDLE.format(kind=value, key=key_list[asked[0]], value=value_lists[asked[0]][0])
        others = [s for s in needles if s != target]
        ctx.rng.shuffle(others)
        placed = list(zip(_random_depths(ctx.rng, len(needles)), [target] + others))
        if depth is not None:
            placed = [(depth, target)] + list(zip(_random_depths(ctx.rng, len(others)), others))
        query = _listing([key_list[i] for i in asked])
        answers = [v for i in asked for v in value_lists[i]]
        kind = value if len(answers) > 1 else value[:-1]
        some, are = ("Some", "are") if len(answers) > 1 else ("A", "is")
        head = (f"{some} special magic {kind} {are} hidden within the following text. Make sure to "
                f"memorize it. I will quiz you about the {kind} afterwards.\n")
        what = "What are all" if len(answers) > 1 else "What is"
        tail = (f"\n{what} the special magic {kind} for {query} mentioned in the provided text? "
                f"Answer: The special magic {kind} for {query} mentioned in the provided text {are}")
        text = {"essay": ctx.text, "repeat": REPEAT_NOISE}.get(haystack)
        if haystack == "needle":  # distractor needles of other keys are the haystack
            text = _needle_haystack(ctx, make[key], make[value], value, length)
        elif haystack == "repeat":
            text = "\n".join([REPEAT_NOISE] * (length // 10 + 8))
        return exact_prompt(ctx.tokenizer, _text_stack(ctx, text, length), length, head, tail + ctx.suffix,
                            placed), answers
    return build


def _needle_haystack(ctx: Context, make_key, make_value, kind: str, length: int) -> str:
    lines, chars = [], 0
    while chars < 6 * length + 200:
        lines.append(RULER_NEEDLE.format(kind=kind, key=make_key(), value=make_value()))
        chars += len(lines[-1]) + 1
    return "\n".join(lines)


# variable tracking --------------------------------------------------------------------------------
def ruler_vt(ctx: Context, length: int, depth: None, hops: int = 4):
    """One chain VAR X0 = value, VAR X1 = VAR X0, ... (hops + 1 names) in RULER's repeated noise; the
    answer is every name holding the value."""
    names = _distinct(lambda: "".join(ctx.rng.choices(string.ascii_uppercase, k=5)), hops + 1)
    value = str(ctx.rng.randint(10000, 99999))
    chain = [f"VAR {names[0]} = {value}."] + [f"VAR {names[j + 1]} = VAR {names[j]}." for j in range(hops)]
    head = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
    tail = (f"\nQuestion: Find all variables that are assigned the value {value} in the text above. "
            f"Answer: According to the chain(s) of variable assignment in the text above, {hops + 1} "
            f"variables are assigned the value {value}, they are:")
    text = "\n".join([REPEAT_NOISE] * (length // 10 + 8))
    needles = list(zip(_random_depths(ctx.rng, len(chain)), chain))
    return exact_prompt(ctx.tokenizer, _text_stack(ctx, text, length), length, head, tail + ctx.suffix,
                        needles), names


# word-list aggregation ----------------------------------------------------------------------------
def _largest_fitting(tokenizer, length: int, make: Callable[[int], str], low: int) -> tuple[str, int]:
    """The prompt make(n) of the largest n >= low with at most `length` tokens (bisection; the
    count grows with n)."""
    if count_tokens(tokenizer, make(low)) > length:
        raise UserError(f"the smallest prompt of this task has {count_tokens(tokenizer, make(low))} "
                        f"tokens, more than the requested length {length}")
    high = low + 1
    while count_tokens(tokenizer, make(high)) <= length:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count_tokens(tokenizer, make(mid)) <= length else (low, mid)
    text = make(low)
    return text, count_tokens(tokenizer, text)


def ruler_cwe(ctx: Context, length: int, depth: None, common: int = 10):
    """A numbered word list: `common` words repeated often (6x below 4096 tokens, else 30x), the
    rest rarely (1x, else 3x), shuffled; the answer is the common words (RULER's settings)."""
    if len(ctx.vocab) < common + 1:
        raise UserError(f"ruler_cwe needs more than {common} distinct words in the haystack text")
    repeats, rare_repeats = (6, 1) if length < 4096 else (30, 3)
    words = ctx.rng.sample(ctx.vocab, len(ctx.vocab))
    order_seed = ctx.rng.getrandbits(32)

    def make(n: int) -> str:
        rare = words[common:common + n]
        listed = words[:common] * repeats + rare * rare_repeats
        random.Random(order_seed).shuffle(listed)
        context = " ".join(f"{i + 1}. {w}" for i, w in enumerate(listed))
        return ("Below is a numbered list of words. In these words, some appear more often than "
                f"others. Memorize the ones that appear most often.\n{context}\nQuestion: What are "
                f"the {common} most common words in the above list? Answer: The top {common} words "
                f"that appear most often in the list are:")
    text, tokens = _largest_fitting(ctx.tokenizer, length, lambda n: make(n) + ctx.suffix, 0)
    return Prompt(text, tokens, 0, ()), words[:common]


def ruler_fwe(ctx: Context, length: int, depth: None, alpha: float = 2.0):
    """Coded six-letter words with Zipf(alpha) counts n * k^-alpha / zeta(alpha), the top rank
    being noise ('...'); the answer is ranks 1-3 (RULER's settings, vocabulary of length // 50)."""
    size = max(8, length // 50)
    vocab = _distinct(lambda: "".join(ctx.rng.choices(string.ascii_lowercase, k=6)), size)
    vocab[0] = "..."
    zeta = sum(k ** -alpha for k in range(1, 100000))
    order_seed = ctx.rng.getrandbits(32)

    def make(n: int) -> str:
        words = [w for k, w in enumerate(vocab, start=1) for _ in range(math.floor(n * k ** -alpha / zeta))]
        random.Random(order_seed).shuffle(words)
        return ("Read the following coded text and track the frequency of each coded word. Find the "
                f"three most frequently appeared coded words. {' '.join(words)}\nQuestion: Do not "
                "provide any explanation. Please ignore the dots '....'. What are the three most "
                "frequently appeared words in the above coded text? Answer: According to the coded "
                "text above, the three most frequently appeared words are:")
    text, tokens = _largest_fitting(ctx.tokenizer, length, lambda n: make(n) + ctx.suffix, 20)
    return Prompt(text, tokens, 0, ()), vocab[1:4]


TASKS: dict[str, TaskSpec] = {
    "needle_single": TaskSpec("niah", True, 32, needle_single),
    "needle_multi": TaskSpec("niah", False, 128, needle_multi),
    "niah_single_1": TaskSpec("niah", True, 128, _niah("repeat")),
    "niah_single_2": TaskSpec("niah", True, 128, _niah("essay")),
    "niah_single_3": TaskSpec("niah", True, 128, _niah("essay", value="uuids")),
    "niah_multikey_1": TaskSpec("niah", True, 128, _niah("essay", keys=4)),
    "niah_multikey_2": TaskSpec("niah", True, 128, _niah("needle")),
    "niah_multikey_3": TaskSpec("niah", True, 128, _niah("needle", key="uuids", value="uuids")),
    "niah_multivalue": TaskSpec("niah", False, 128, _niah("essay", values=4)),
    "niah_multiquery": TaskSpec("niah", False, 128, _niah("essay", queries=4)),
    "ruler_vt": TaskSpec("variable_tracking", False, 30, ruler_vt),
    "ruler_cwe": TaskSpec("common_words_extraction", False, 120, ruler_cwe),
    "ruler_fwe": TaskSpec("freq_words_extraction", False, 50, ruler_fwe),
}
"""task name (lm-evaluation-harness' for RULER's) -> how to build it"""


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    return TASKS[name]


def make_sample(tokenizer, task: str, index: int, length: int, depth: float | None, seed: int,
                source: str = "foldoc", needles: int = 3, suffix: str = "") -> Sample:
    """Sample `index` of `task` at (length, depth), drawn from its own seeded stream: the same
    arguments give the same prompt, whatever else is built. `suffix` ends the prompt (inside the
    length): the text a model was trained to see before its answer."""
    spec = task_spec(task)
    text = source_text(source)
    stream = f"{seed}/{task}/{length}/{depth}/{index}/{needles}"
    ctx = Context(tokenizer, random.Random(stream), text, _vocab(source), needles, suffix)
    prompt, outputs = spec.build(ctx, length, depth if spec.uses_depth else None)
    return Sample(task, index, length, depth if spec.uses_depth else None, prompt.text,
                  tuple(outputs), prompt.tokens, prompt.depths)


# the trivial baseline: a guess among the prompt's candidates ----------------------------------------
_CANDIDATES = {
    "niah": r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|\b\d{7}\b",
    "variable_tracking": r"VAR ([A-Z]{5})\b",
    "common_words_extraction": r"\b\d+\. ([a-z]+)\b",
    "freq_words_extraction": r"(?<= )([a-z]{6})(?= |\n)",
}


def guess(sample: Sample) -> str:
    """The answer of a reader that knows the answer's form and count but not which: as many distinct
    strings of the answer's form (7-digit numbers or uuids, variable names, listed words) as the task
    has references, drawn uniformly from those in the prompt. Its score is the chance level the
    prompt leaves (1/4 for one key among four, ...), beside which a model's score means something."""
    import re
    pattern = _CANDIDATES[task_spec(sample.task).family]
    body = sample.input[:sample.input.rfind("\nQuestion")] if "\nQuestion" in sample.input else sample.input
    found = sorted(set(re.findall(pattern, body)))
    rng = random.Random(f"guess/{sample.task}/{sample.length}/{sample.depth}/{sample.index}/{sample.input[:64]}")
    return " ".join(rng.sample(found, min(len(found), len(sample.outputs))))


@functools.lru_cache(maxsize=4)
def _vocab(source: str) -> tuple[str, ...]:
    return tuple(vocabulary(source_text(source)))
