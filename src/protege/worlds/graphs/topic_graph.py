"""Synthetic hyperlink graphs whose page text carries signal about their links, at the paper's scale.

Pages sit in a topic tree: `levels` levels of `branching` subtopics, `pages_per_leaf` pages per leaf
topic, numbered so that every topic is a contiguous id range (page u's level-l topic is u // size_l,
size_L = pages_per_leaf, size_{l-1} = branching * size_l). The first page of a topic is its hub (an
overview page). Links are of two kinds:
  structural: every page links to its leaf's hub; a level-h hub links to its sibling hubs (at level
      1: every level-1 hub), to the hubs of its subtopics at every deeper level and to every page of
      its leaf -- a category tree, ~2 links a page;
  random: the rest of a Pareto out-degree (like `synthetic.build_powerlaw`'s), each link picking a
      level with probabilities `link_mix` = (elsewhere, level 1, ..., level L) -- "elsewhere" is a
      uniformly chosen level-1 topic, level l is u's own level-l topic -- then a target
      lo + floor(size * U^skew) in that topic, so in-degrees are heavy-tailed towards its hubs.
Links falling off with tree distance make Kleinberg's hierarchical small world, and the hub tree
gives every pair a short path (up to a common ancestor's hub, then down): navigable, but only for a
navigator that can tell which link leads closer to the target's topic -- which the text tells.

A page's text is `words_per_page` words, each drawn with probabilities `text_mix` = (general,
level 1, ..., level L): a general word is uniform over a 2^20-word vocabulary (noise, like
stop-words after IDF); a level-l word is one of `topic_words` words owned by u's level-l topic,
Zipf-like (k = floor(topic_words * U^1.5)); a level-h hub draws no word deeper than level h (its
text is about its whole topic). Pages of one leaf share many words, pages of one
level-1 topic a few, unrelated pages almost none. Words are 64-bit hashes of (level, topic, k),
rendered as pseudo-words only for small graphs and examples (`page_text`).

The embedding is the hashing trick followed by a Gaussian random projection: the sum over the
page's words of row (word mod 2^18) of a fixed N(0, 1) [2^18, dim] table, L2-normalised -- a
bag-of-words embedding whose cosine tracks word overlap (Johnson-Lindenstrauss), at ~1 us a page.
Everything is a pure function of (page id, seed), so embeddings are computed in any chunk order.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

from protege.core.atomic import write_json_atomic
from protege.data.manifest import output_folder, write_manifest
from protege.worlds.graphs import store
from protege.worlds.graphs.synthetic import powerlaw_degrees, write_targets
from protege.worlds.graphs.walks import _splitmix, _stream

GENERAL_VOCAB = 1 << 20
HASH_ROWS = 1 << 18
_UNIT = 1.0 / 9007199254740992.0  # 2^-53: top 53 random bits -> a float in [0, 1)


@dataclass(frozen=True)
class TopicSpec:
    """Shape of the topic tree, the link mixture and the text mixture (see the module docstring)."""
    levels: int = 3
    branching: int = 32
    pages_per_leaf: int = 128
    link_mix: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4)
    """P(link goes elsewhere), P(within the level-1 topic), ..., P(within the leaf)"""
    skew: float = 2.0
    """target = lo + floor(size * U^skew) within the chosen topic: its first pages are hubs"""
    text_mix: tuple[float, ...] = (0.25, 0.2, 0.25, 0.3)
    """P(general word), P(level-1 topic word), ..., P(leaf topic word)"""
    words_per_page: int = 24
    topic_words: int = 16
    """words owned by each topic"""
    seed: int = 0

    def __post_init__(self):
        for name, mix in (("link_mix", self.link_mix), ("text_mix", self.text_mix)):
            if len(mix) != self.levels + 1 or min(mix) < 0 or abs(sum(mix) - 1) > 1e-9:
                raise ValueError(f"{name} must be {self.levels + 1} probabilities summing to 1, got {mix}")
        if min(self.levels, self.branching, self.pages_per_leaf, self.words_per_page,
               self.topic_words) < 1 or self.skew <= 0:
            raise ValueError(f"levels, branching, pages_per_leaf, words_per_page and topic_words "
                             f"must be >= 1 and skew > 0: {self}")

    def sizes(self) -> np.ndarray:
        """int64 [levels + 1]: pages per topic at level 0 ("elsewhere": a level-1 topic), 1, ..., L."""
        per = [self.pages_per_leaf * self.branching ** (self.levels - l) for l in range(1, self.levels + 1)]
        return np.array([per[0]] + per, dtype=np.int64)


@njit(inline="always")
def _uniform(state):
    state, r = _splitmix(state)
    return state, np.float64(r >> np.uint64(11)) * _UNIT


@njit(inline="always")
def _pick(cdf, x):
    level = 0
    while level < len(cdf) - 1 and x >= cdf[level]:
        level += 1
    return level


@njit(cache=True)
def _hub_level(u, sizes):
    """Highest level whose topic page u is the hub (first page) of, 1..L; L + 1 for other pages."""
    for level in range(1, len(sizes)):
        if u % sizes[level] == 0:
            return level
    return len(sizes)


@njit(cache=True)
def _structural(u, n, sizes, branching, out, at):
    """Page u's structural links, written to out[at:] when `out` is long enough; returns their count.
    A page links to its leaf's hub; a level-h hub to the hubs of its siblings (every level-1 hub,
    for h = 1), of its subtopics at every deeper level, and to every page of its leaf."""
    count = 0
    levels = len(sizes) - 1
    h = _hub_level(u, sizes)
    if h > levels:
        if len(out) > at:
            out[at] = (u // sizes[levels]) * sizes[levels]
        return 1
    parent = sizes[h - 1] if h > 1 else n  # level 0 is the whole graph
    lo = (u // parent) * parent
    for v in range(lo, min(lo + parent, n), sizes[h]):  # siblings' hubs (h = 1: all level-1 hubs)
        if v != u:
            if len(out) > at + count:
                out[at + count] = v
            count += 1
    for m in range(h + 1, levels + 1):                   # subtopics' hubs, level by level
        for j in range(1, branching):
            v = u + j * sizes[m]
            if v < min(u + sizes[m - 1], n):
                if len(out) > at + count:
                    out[at + count] = v
                count += 1
    for v in range(u + 1, min(u + sizes[levels], n)):   # the pages of its leaf
        if len(out) > at + count:
            out[at + count] = v
        count += 1
    return count


@njit(cache=True)  # serial: ~0.1 s at 38M pages, and a parallel kernel costs seconds to compile
def _structural_degrees(n, sizes, branching):
    deg = np.empty(n, np.int64)
    none = np.empty(0, np.int64)
    for u in range(n):
        deg[u] = _structural(u, n, sizes, branching, none, 0)
    return deg


@njit(cache=True)
def _fill_row(u, offsets, struct_deg, out, edge_lo, n, tops, cdf, sizes, branching, skew, seed):
    """Row u: its structural links, then random ones (a level from `cdf`, then a target in u's topic
    at that level, or in a uniform level-1 topic, skewed towards the topic's first pages)."""
    row = np.empty(struct_deg[u], np.int64)
    _structural(u, n, sizes, branching, row, 0)
    for j in range(len(row)):
        out[offsets[u] - edge_lo + j] = row[j]
    state = _stream(seed, u)
    for e in range(offsets[u] + len(row), offsets[u + 1]):
        state, x = _uniform(state)
        level = _pick(cdf, x)
        state, y = _uniform(state)
        block = np.int64(y * tops) if level == 0 else u // sizes[level]
        lo = block * sizes[level]
        size = min(lo + sizes[level], n) - lo
        state, z = _uniform(state)
        v = lo + min(np.int64(z ** skew * size), size - 1)
        if v == u:  # no self-loops: the next page of the topic, or of the graph
            v = lo + (v - lo + 1) % size if size > 1 else (u + 1) % n
        out[e - edge_lo] = v


# Each kernel comes serial and parallel: a parallel kernel takes seconds to compile (numba caches it
# after), which small graphs -- tests -- never win back; large ones use the parallel one.
@njit(cache=True)
def _fill_serial(offsets, struct_deg, out, row_lo, row_hi, edge_lo, n, cdf, sizes, branching, skew, seed):
    tops = (n + sizes[0] - 1) // sizes[0]
    for u in range(row_lo, row_hi):
        _fill_row(u, offsets, struct_deg, out, edge_lo, n, tops, cdf, sizes, branching, skew, seed)


@njit(parallel=True, cache=True)
def _fill_parallel(offsets, struct_deg, out, row_lo, row_hi, edge_lo, n, cdf, sizes, branching, skew,
                   seed):
    tops = (n + sizes[0] - 1) // sizes[0]
    for u in prange(row_lo, row_hi):
        _fill_row(u, offsets, struct_deg, out, edge_lo, n, tops, cdf, sizes, branching, skew, seed)


PARALLEL_FROM = 1 << 20
"""rows (pages) from which the parallel kernels are used"""


@njit(inline="always")
def _word(state, u, cdf, sizes, topic_words):
    """One word of page u: (new state, 64-bit word hash)."""
    state, x = _uniform(state)
    level = min(_pick(cdf, x), _hub_level(u, sizes))  # a hub's text is about its whole topic
    state, y = _uniform(state)
    if level == 0:
        key = np.uint64(np.int64(y * 1048576))  # GENERAL_VOCAB
    else:
        topic = np.uint64(u // sizes[level])
        key = (np.uint64(level) << np.uint64(56)) ^ (topic << np.uint64(16)) \
            ^ np.uint64(np.int64(y ** 1.5 * topic_words))
    _, h = _splitmix(key * np.uint64(0x9E3779B97F4A7C15))
    return state, h


@njit(cache=True)
def _page_words(u, n_words, cdf, sizes, topic_words, seed):
    words = np.empty(n_words, np.uint64)
    state = _stream(seed, u)
    for j in range(n_words):
        state, words[j] = _word(state, u, cdf, sizes, topic_words)
    return words


@njit(cache=True)
def _embed_row(u, table, n_words, cdf, sizes, topic_words, seed, out_row):
    dim = table.shape[1]
    mask = np.uint64(table.shape[0] - 1)
    state = _stream(seed, u)
    acc = np.zeros(dim, np.float32)
    for _ in range(n_words):
        state, h = _word(state, u, cdf, sizes, topic_words)
        row = np.int64(h & mask)
        for d in range(dim):
            acc[d] += table[row, d]
    norm = max(np.sqrt((acc * acc).sum()), 1e-9)
    for d in range(dim):
        out_row[d] = acc[d] / norm


@njit(cache=True)
def _embed_serial(lo, hi, table, n_words, cdf, sizes, topic_words, seed, out):
    for i in range(hi - lo):
        _embed_row(lo + i, table, n_words, cdf, sizes, topic_words, seed, out[i])


@njit(parallel=True, cache=True)
def _embed_parallel(lo, hi, table, n_words, cdf, sizes, topic_words, seed, out):
    for i in prange(hi - lo):
        _embed_row(lo + i, table, n_words, cdf, sizes, topic_words, seed, out[i])


def _cdf(mix) -> np.ndarray:
    return np.cumsum(np.asarray(mix, np.float64))


def _text_seed(spec: TopicSpec) -> int:
    return spec.seed + 7919  # the text's own stream: changing the text never changes the links


def hash_table(dim: int, seed: int) -> np.ndarray:
    """float32 [2^18, dim] N(0, 1) rows: the random projection of the hashed bag of words."""
    return np.random.default_rng([seed, dim]).standard_normal((HASH_ROWS, dim), dtype=np.float32)


class TopicEmbedder:
    """`encode(lo, hi) -> float32 [hi - lo, dim]` unit-norm embeddings of pages lo..hi-1 (for
    `page_store.encode_store`); `source` describes it for the store's manifest."""

    def __init__(self, spec: TopicSpec, dim: int = 64):
        self.spec, self.dim = spec, dim
        self.table = hash_table(dim, spec.seed)
        self.cdf, self.sizes = _cdf(spec.text_mix), spec.sizes()
        self.source = {"encoder": "topic-hashed-bow", "dim": dim, "spec": asdict(spec)}

    def __call__(self, lo: int, hi: int) -> np.ndarray:
        out = np.empty((hi - lo, self.dim), np.float32)
        kernel = _embed_parallel if hi - lo >= PARALLEL_FROM // 8 else _embed_serial
        kernel(lo, hi, self.table, self.spec.words_per_page, self.cdf, self.sizes,
               self.spec.topic_words, _text_seed(self.spec), out)
        return out


def page_words(spec: TopicSpec, u: int) -> np.ndarray:
    """uint64 word hashes of page u's text (the words the embedding sums)."""
    return _page_words(u, spec.words_per_page, _cdf(spec.text_mix), spec.sizes(), spec.topic_words,
                       _text_seed(spec))


_SYLLABLES = [c + v for c in "bdfghklmnprstvz" for v in "aeiou"]


def page_text(spec: TopicSpec, u: int) -> str:
    """Page u's text as pseudo-words (2-4 syllables from each word's hash), for people to look at."""
    out = []
    for h in page_words(spec, u).tolist():
        n = 2 + h % 3
        out.append("".join(_SYLLABLES[(h >> (8 + 7 * i)) % len(_SYLLABLES)] for i in range(n)))
    return " ".join(out)


def topic_of(spec: TopicSpec, pages: np.ndarray, level: int) -> np.ndarray:
    """Level-`level` topic index of each page (level 1..L)."""
    return np.asarray(pages, np.int64) // spec.sizes()[level]


def build_topic_graph(out: Path, nodes: int, edges: int, spec: TopicSpec = TopicSpec(),
                      gamma: float = 2.1, chunk_edges: int = 1 << 26, progress=None) -> dict:
    """Write a topic graph folder (CSR arrays, no pages.parquet: its text is `page_text`, its
    embeddings `TopicEmbedder`); returns the summary with timings."""
    t0 = time.perf_counter()
    sizes = spec.sizes()
    struct_deg = _structural_degrees(nodes, sizes, spec.branching)
    structural = int(struct_deg.sum())
    if structural >= edges:
        raise ValueError(f"{edges} edges cannot hold the {structural} structural links of {nodes} pages")
    deg = powerlaw_degrees(nodes, (edges - structural) / nodes, gamma, seed=spec.seed) + struct_deg
    offsets = np.zeros(nodes + 1, dtype=np.int64)
    np.cumsum(deg, out=offsets[1:])
    del deg
    dtype = store.index_dtype(nodes - 1)
    cdf = _cdf(spec.link_mix)
    with output_folder(Path(out), store.KIND, (), store.CACHES) as tmp:
        np.save(tmp / "offsets.npy", offsets)
        fill = _fill_parallel if nodes >= PARALLEL_FROM else _fill_serial
        write_targets(tmp / "targets.npy", offsets, dtype, chunk_edges, progress,
                      lambda buf, row, hi: fill(offsets, struct_deg, buf, row, hi, offsets[row], nodes, cdf,
                                                sizes, spec.branching, spec.skew, spec.seed))
        info = {"nodes": nodes, "edges": int(offsets[-1]), "targets_dtype": np.dtype(dtype).name,
                "source_type": "synthetic-topics", "gamma": gamma, "topics": asdict(spec),
                "structural_links": structural, "hubs": int((struct_deg > 1).sum()),
                "dead_ends": int((np.diff(offsets) == 0).sum())}
        write_json_atomic(tmp / "summary.json", info)
        write_manifest(tmp, {"kind": store.KIND, "nodes": nodes, "edges": info["edges"]})
    return {**info, "build_s": time.perf_counter() - t0, "threads": numba.get_num_threads()}


def spec_of(graph) -> TopicSpec:
    """The TopicSpec a topic graph folder was built with (from its summary.json)."""
    topics = dict(graph.summary()["topics"])
    return TopicSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in topics.items()})
