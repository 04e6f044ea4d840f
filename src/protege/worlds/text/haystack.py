"""Haystacks for long-context recall: real text cut to an exact token count with the model's tokenizer.

The text is what Debian ships: FOLDOC or the Jargon File (dictd databases), the licence texts in
/usr/share/common-licenses, or any text file or folder of `.txt` files. A prompt is
`head + haystack + tail`, with needles (sentences) placed at sentence boundaries of the haystack
nearest to the requested depths; the haystack's length in tokens is searched so that the whole
prompt, as the model sees it (the tokenizer's BOS included), is exactly the requested length.
"""

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from protege.core.errors import UserError

SOURCES = ("foldoc", "jargon", "licenses")
"""built-in haystack sources; anything else is read as a text file or a folder of .txt files"""
LICENSES_DIR = Path("/usr/share/common-licenses")
REPEAT_NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
"""RULER's repeated filler sentence (its niah_single_1 and variable-tracking haystack)"""
_SENTENCE_START = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+(?=\S)")
_WORD_START = re.compile(r"\s+(?=\S)")


def check_source(source: str) -> None:
    """A one-line `UserError` for a haystack source that does not exist, before any work."""
    if source in ("foldoc", "jargon"):
        from protege.worlds.text.dictd import dictd_paths
        dictd_paths(source)
    elif source != "licenses" and not Path(source).exists():
        raise UserError(f"haystack {source!r}: not one of {', '.join(SOURCES)} nor an existing "
                        f"text file or folder of .txt files")


@functools.lru_cache(maxsize=4)
def source_text(source: str) -> str:
    """The whole text of a haystack source, paragraphs separated by newlines, whitespace runs inside
    a paragraph collapsed to one space."""
    if source in ("foldoc", "jargon"):
        from protege.worlds.text.dictd import read_dictd
        from protege.worlds.text.foldoc import clean_definition
        paragraphs = [clean_definition(e.text, max_words=10**9) for e in read_dictd(source)]
    elif source == "licenses":
        paragraphs = _paragraphs_of(sorted(p for p in LICENSES_DIR.glob("*") if p.is_file()), source)
    else:
        path = Path(source)
        if path.is_dir():
            paragraphs = _paragraphs_of(sorted(path.rglob("*.txt")), source)
        elif path.is_file():
            paragraphs = _paragraphs_of([path], source)
        else:
            raise UserError(f"haystack {source!r}: not one of {', '.join(SOURCES)} nor an existing "
                            f"text file or folder of .txt files")
    text = "\n".join(p for p in paragraphs if len(p.split()) >= 4)
    if len(text.split()) < 100:
        raise UserError(f"haystack {source!r}: only {len(text.split())} words of text (need >= 100)")
    return text


def _paragraphs_of(files: list[Path], source: str) -> list[str]:
    if not files:
        raise UserError(f"haystack {source!r}: no text files found")
    paragraphs = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"haystack {file}: cannot read it as UTF-8 text ({type(e).__name__})") from None
        paragraphs += [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return paragraphs


def vocabulary(text: str, min_count: int = 3) -> list[str]:
    """Lower-case alphabetic words (4-10 letters) seen at least `min_count` times, sorted: the words
    that keys and word lists are drawn from, so they come from the haystack's own language."""
    from collections import Counter
    counts = Counter(re.findall(r"\b[a-z]{4,10}\b", text))
    words = sorted(w for w, c in counts.items() if c >= min_count)
    if len(words) < 50:
        raise UserError(f"haystack text has only {len(words)} distinct words seen {min_count}+ times "
                        f"(need >= 50 to draw keys from)")
    return words


# exact-length prompts --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prompt:
    text: str
    """the whole prompt: head, haystack with the needles inside, tail"""
    tokens: int
    """its length as the model sees it (the tokenizer's BOS included)"""
    haystack_tokens: int
    """tokens of haystack text kept (needles excluded)"""
    depths: tuple[float, ...]
    """each needle's depth as placed: haystack characters before it / haystack characters, in [0, 1]"""


def count_tokens(tokenizer, text: str) -> int:
    """Tokens the model sees for `text`: the tokenizer's own specials (a BOS) plus the text's ids."""
    return len(tokenizer(text)["input_ids"])


class Haystack:
    """A window of haystack text with its token boundaries and sentence starts, for one tokenizer."""

    def __init__(self, tokenizer, text: str):
        if not getattr(tokenizer, "is_fast", False):  # character offsets come from the Rust tokenizers
            raise UserError(f"{type(tokenizer).__name__}: recall prompts need a fast tokenizer (a "
                            f"tokenizer.json beside the model) to cut haystacks at token boundaries")
        self.text = text
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        # end character of each token prefix: cutting after token k keeps text[:ends[k-1]]
        self.ends = [end for _, end in encoding["offset_mapping"]]
        self.word_starts = [0] + [m.end() for m in _WORD_START.finditer(text[:2000])]

    def __len__(self) -> int:
        return len(self.ends)

    def cut(self, k: int) -> str:
        return self.text[:self.ends[k - 1]] if k > 0 else ""


def window(text: str, start: int, chars: int) -> str:
    """`chars` characters of `text` from `start` (wrapping around), beginning at a sentence start."""
    if len(text) < start + chars:
        text = text * (1 + (start + chars) // max(1, len(text)))
    m = _SENTENCE_START.search(text, start)
    begin = m.end() if m and start > 0 else start
    return text[begin:begin + chars]


def needle_positions(cut: str, depths: list[float]) -> list[int]:
    """Where needles at these depths go in `cut`: the sentence start nearest to depth * len(cut) (0 =
    before all the text, 1 = after it), or the nearest word start where no sentence starts within 2%
    of the text (long legal sentences). -1 stands for the end of the text, however long it is cut."""
    sentences = [0] + [m.end() for m in _SENTENCE_START.finditer(cut)] + [len(cut)]
    words = [0] + [m.end() for m in _WORD_START.finditer(cut)] + [len(cut)]
    positions = []
    for depth in depths:
        target = depth * len(cut)
        position = _nearest(sentences, target)
        if abs(position - target) > 0.02 * len(cut):
            position = _nearest(words, target)
        positions.append(-1 if position == len(cut) and cut else position)
    return positions


def place_needles(cut: str, needles: list[tuple[float, str]],
                  positions: list[int] | None = None) -> tuple[str, tuple[float, ...]]:
    """Insert each (depth, sentence) into `cut` at `needle_positions` (or the given character
    positions); returns the text and the depths as placed (characters before / characters)."""
    if positions is None:
        positions = needle_positions(cut, [d for d, _ in needles])
    at = [(len(cut) if p < 0 else min(p, len(cut)), sentence) for p, (_, sentence) in zip(positions, needles)]
    text, last = "", 0
    for position, sentence in sorted(at, key=lambda p: p[0]):  # stable: equal places keep order
        text = _join(_join(text, cut[last:position]), sentence)
        last = position
    text = _join(text, cut[last:])
    return text, tuple(p / len(cut) if cut else 0.0 for p, _ in at)


def _nearest(starts: list[int], target: float) -> int:
    return min(starts, key=lambda s: (abs(s - target), s))


def _join(left: str, right: str) -> str:
    """Two pieces of text with one space between them (none after a newline or before nothing)."""
    left, right = left.rstrip(" "), right.lstrip(" ")
    if not left or not right or left.endswith("\n"):
        return left + right
    return left + " " + right


def exact_prompt(tokenizer, haystack: Haystack, length: int, head: str, tail: str,
                 needles: list[tuple[float, str]] = ()) -> Prompt:
    """The prompt head + haystack (needles inside) + tail of exactly `length` tokens: the number k of
    haystack tokens kept is moved until the tokenized prompt has `length` tokens. Tokenization is
    not additive at the joins, so the count is always measured on the whole prompt."""
    needles = list(needles)

    def build(k: int, drop: int = 0, rank: int = 0) -> tuple[str, tuple[float, ...]]:
        cut = haystack.cut(k)[drop:]
        body, depths = place_needles(cut, needles, _moved(cut, needles, rank))
        return head + body + tail, depths

    fixed = count_tokens(tokenizer, build(0)[0])
    if fixed > length:
        raise UserError(f"the task's question and needles alone take {fixed} tokens, more than the "
                        f"requested length {length}; ask for a longer length")
    tried: dict[int, int] = {}
    k = length - fixed
    for _ in range(8):  # Newton-like steps: the count grows about one token per haystack token
        k = max(0, min(k, len(haystack)))
        if k not in tried:
            tried[k] = count_tokens(tokenizer, build(k)[0])
        if tried[k] == length:
            text, depths = build(k)
            return Prompt(text, length, k, depths)
        k += length - tried[k]
    # Cutting through a word re-tokenizes its piece (" Comp" alone is not " Comp" of " Compiler"),
    # and a needle moving to the next sentence changes the joins: the count can skip `length`. Then
    # whole words are dropped from the haystack's start and needles tried at nearby word starts too;
    # of the prompts that hit the length, the one with needles nearest their depths is kept.
    closest = min(tried, key=lambda j: (abs(tried[j] - length), j))
    for drop in haystack.word_starts[:6]:
        hits = []
        for rank in range(3):
            for j in range(max(0, closest - 8), min(len(haystack), closest + 8) + 1):
                text, depths = build(j, drop, rank)
                if count_tokens(tokenizer, text) == length:
                    error = max((abs(a - d) for a, (d, _) in zip(depths, needles)), default=0.0)
                    hits.append((error, rank, j, text, depths))
        if hits:
            _, _, j, text, depths = min(hits, key=lambda h: h[:3])
            return Prompt(text, length, j, depths)
    raise UserError(f"cannot cut the haystack to a {length}-token prompt with this tokenizer "
                    f"(haystack of {len(haystack)} tokens; closest {tried[closest]})")


def _moved(cut: str, needles: list[tuple[float, str]], rank: int) -> list[int]:
    """Needle positions in `cut`: where `needle_positions` puts them (rank 0), or their rank-th
    nearest word start."""
    positions = needle_positions(cut, [d for d, _ in needles])
    if rank == 0:
        return positions
    words = [0] + [m.end() for m in _WORD_START.finditer(cut)]
    return [p if p < 0 else sorted(words, key=lambda w: (abs(w - p), w))[min(rank, len(words) - 1)]
            for p in positions]


def haystack_for(tokenizer, text: str, length: int, start: int) -> Haystack:
    """A haystack window from `start` holding more than `length` tokens (grown until it does)."""
    chars = 6 * length + 200
    for _ in range(12):
        stack = Haystack(tokenizer, window(text, start, chars))
        if len(stack) > length:
            return stack
        chars *= 2
    raise UserError(f"haystack text too short for a {length}-token prompt")
