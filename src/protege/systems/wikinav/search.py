"""Query-driven navigation (the paper's downstream use): start at the page BM25 ranks first for a
free-text query, then follow the learned policy with the query as the target, never revisiting a
page (depth-first, stepping back from a page whose links are all visited), and report the pages
visited as evidence candidates, each with its title, source path and URL.

BM25 is bm25s (Lucene's BM25, k1 = 1.5, b = 0.75, English stop words, no stemming): maintained,
sparse-matrix scoring in numpy/scipy (hundreds of times faster than rank_bm25), and indexes a few
thousand pages in seconds, so the index is built when a search starts and never goes stale.

`search_eval` measures it: for held-out pages, the page's own first sentence is the query, and that
sentence is removed from what the retriever indexes and from the page's embedding (so neither finds
the page by the exact words of the query); success@k = the page is among the first k pages examined
(retrieval alone: BM25's top k; navigation: the start page and the next k-1 distinct pages visited).
"""

import re

import numpy as np
import torch

from protege.core.errors import UserError
from protege.nn.link_scorer import candidates
from protege.nn.text_encoders import encode_texts

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(`])")


def bm25_index(texts: list[str]):
    import bm25s
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    return retriever


def bm25_top(retriever, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(page ids, scores) of the k best pages for each query, best first, both (Q, k)."""
    import bm25s
    tokens = bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False)
    k = min(k, retriever.scores["num_docs"])
    docs, scores = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    return np.asarray(docs, dtype=np.int64), np.asarray(scores)


def query_encoder(graph, encoder: str, texts: list[str] | None = None):
    """A function from free texts to vectors in the page-embedding space of `encoder`.

    MiniLM encodes any text. The TF-IDF+SVD encoder keeps no fitted projection, so it is fitted again
    on the graph's texts (`text_encoders.fit_tfidf`, deterministic: a fixed SVD seed) and checked
    against the cached page embeddings before use."""
    if encoder == "minilm":
        return lambda xs: encode_texts(list(xs), "minilm")
    from protege.nn.text_encoders import fit_tfidf, load_or_encode
    texts = graph.texts() if texts is None else texts
    encode = fit_tfidf(texts)[0]
    cached = np.asarray(load_or_encode(graph, "tfidf", show_progress=False)[:50], dtype=np.float32)
    if np.abs(encode(texts[:50]) - cached).max() > 1e-3:
        raise UserError(f"{graph.folder}: the cached tf-idf page embeddings do not match a fresh fit "
                        f"(built by another version?); delete embeddings-tfidf.safetensors there")
    return encode


def navigate_query(model, graph, start: int, goal: np.ndarray, pages: int, learned: bool = True,
                   max_moves: int | None = None, via: list | None = None) -> list[int]:
    """Distinct pages visited from `start` towards the free vector `goal` (start first, at most
    `pages`): the best unvisited link by the policy (`learned`) or by similarity alone, stepping back
    when a page has no unvisited link; at most `max_moves` moves (default 3 x pages). `via`, if
    given, receives for each visited page the page whose link led to it (None for the start)."""
    goal_t = torch.from_numpy(np.asarray(goal, dtype=np.float32)[None])
    path, order, seen = [start], [start], {start}
    via = [None] if via is None else via
    via[:] = [None]
    for _ in range(max_moves or 3 * pages):
        if len(order) >= pages or not path:
            break
        cur = path[-1]
        cand, seg, _ = candidates(graph.offsets, graph.targets, np.array([cur]))
        fresh = np.array([c not in seen for c in cand], bool)
        if not fresh.any():
            path.pop()  # step back (a move) to look at the previous page's other links
            continue
        with torch.inference_mode():
            args = (torch.tensor([cur]), torch.tensor([cur]), torch.from_numpy(cand), torch.from_numpy(seg))
            scores = (model(*args, goal_emb=goal_t) if learned
                      else model.baseline(args[1], args[2], args[3], goal_t)).numpy()
        nxt = int(cand[int(np.argmax(np.where(fresh, scores, -np.inf)))])
        via.append(cur)
        path.append(nxt)
        order.append(nxt)
        seen.add(nxt)
    return order


def search(model, graph, encoder: str, query: str, steps: int = 6) -> list[dict]:
    """The start page (BM25's best) and the pages the policy visits next, with title, path, URL, BM25
    score and embedding similarity to the query."""
    texts = graph.texts()
    retriever = bm25_index(texts)
    top, _ = bm25_top(retriever, [query], 1)
    q = query_encoder(graph, encoder, texts)([query])[0]
    via: list = []
    order = navigate_query(model, graph, int(top[0, 0]), q, steps + 1, via=via)
    bm25 = _bm25_scores(retriever, query, graph.num_nodes)
    meta = page_meta(graph)
    emb = model.rows(torch.tensor(order)).numpy()
    step_of = {p: i for i, p in enumerate(order)}
    return [{"step": i, "page": meta["title"][p], "path": meta["path"][p], "url": meta["url"][p],
             "from step": "" if v is None else step_of[v], "bm25": round(float(bm25[p]), 3),
             "similarity": round(float(emb[i] @ q), 4)} for i, (p, v) in enumerate(zip(order, via))]


def _bm25_scores(retriever, query: str, n: int) -> np.ndarray:
    docs, scores = bm25_top(retriever, [query], n)
    out = np.zeros(n, dtype=np.float32)
    out[docs[0]] = scores[0]
    return out


def page_meta(graph) -> dict[str, list[str]]:
    """Titles, source paths and URLs (path and URL empty for graphs whose builder stores none)."""
    table = graph.pages()
    names = set(table.column_names) if table is not None else set()
    titles = graph.titles()
    return {"title": titles,
            "path": table.column("path").to_pylist() if "path" in names else [""] * len(titles),
            "url": table.column("url").to_pylist() if "url" in names else [""] * len(titles)}


def first_sentence(text: str, min_words: int = 6, max_words: int = 60) -> str | None:
    """The text's first sentence when it has between `min_words` and `max_words` words."""
    sentence = _SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()
    return sentence if min_words <= len(sentence.split()) <= max_words else None


def _after_headings(body: str, headings: list[str]) -> str:
    for heading in headings:
        if body.startswith(heading):
            body = body[len(heading):].lstrip()
    return body


def held_out_queries(graph, count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """`count` pages drawn uniformly (seed) among pages with a usable first sentence in their main
    content (their text for graphs without one) and at least one link into them; their sentences."""
    table = graph.pages()
    column = "content" if "content" in table.column_names else "text"
    bodies = table.column(column).to_pylist()
    if "headings" in table.column_names:  # main content opens with its heading: skip to the prose
        bodies = [_after_headings(b, h) for b, h in zip(bodies, table.column("headings").to_pylist())]
    indeg = np.bincount(np.asarray(graph.targets), minlength=graph.num_nodes)
    sentences = {p: s for p, body in enumerate(bodies)
                 if indeg[p] > 0 and (s := first_sentence(body)) and len(body) > len(s) + 20}
    pool = np.array(sorted(sentences), dtype=np.int64)
    if len(pool) < count:
        raise UserError(f"{graph.folder}: only {len(pool)} pages have a first sentence of 6-60 words, "
                        f"more text and a link into them; ask for --queries {len(pool)} or fewer")
    pages = np.sort(np.random.default_rng(seed).choice(pool, count, replace=False))
    return pages, [sentences[int(p)] for p in pages]


SEARCH_KS = (1, 2, 5, 10, 20)
METHODS = {"bm25": "retrieval alone (BM25 top k)", "bm25+policy": "BM25 top 1, then the policy",
           "bm25+sim": "BM25 top 1, then similarity to the query (no learning)"}


def search_eval(model, graph, encoder: str, queries: int = 100, ks=SEARCH_KS, seed: int = 0,
                progress=None) -> list[dict]:
    """success@k of finding held-out pages from their own first sentence (see the module doc):
    rows {method, k, n, success, low, high} with Wilson 95% intervals."""
    from protege.eval.stats import wilson_interval
    pages, sentences = held_out_queries(graph, queries, seed)
    texts = graph.texts()
    encode = query_encoder(graph, encoder, texts)  # fitted on the texts the policy was trained on
    for p, s in zip(pages, sentences):
        texts[p] = texts[p].replace(s, " ", 1)
    top, _ = bm25_top(bm25_index(texts), sentences, max(ks))
    goals = encode(sentences)
    emb = np.array(model.embeddings, dtype=np.float32)  # a copy: held-out pages lose their sentence
    emb[pages] = encode([texts[p] for p in pages])
    found = {m: [] for m in METHODS}
    original, model.embeddings = model.embeddings, emb
    try:
        for i, target in enumerate(pages):
            found["bm25"].append(list(top[i]))
            for method, learned in (("bm25+policy", True), ("bm25+sim", False)):
                found[method].append(navigate_query(model, graph, int(top[i, 0]), goals[i], max(ks), learned))
            if progress is not None:
                progress(1)
    finally:
        model.embeddings = original
    rows = []
    for method, lists in found.items():
        for k in ks:
            hits = sum(int(t) in lst[:k] for t, lst in zip(pages, lists))
            low, high = wilson_interval(hits, len(pages))
            rows.append({"method": method, "k": k, "n": len(pages), "success": hits / len(pages),
                         "low": low, "high": high})
    return rows


def search_markdown(rows: list[dict]) -> str:
    """One table: success@k (%) [Wilson 95%] per method."""
    ks = sorted({r["k"] for r in rows})
    cell = {(r["method"], r["k"]): r for r in rows}
    lines = ["| method | " + " | ".join(f"success@{k}" for k in ks) + " |",
             "|---|" + "---|" * len(ks)]
    for method in dict.fromkeys(r["method"] for r in rows):
        cells = [cell[method, k] for k in ks]
        lines.append(f"| {method} | " + " | ".join(
            f"{100 * c['success']:.0f} [{100 * c['low']:.0f}, {100 * c['high']:.0f}]" for c in cells) + " |")
    return "\n".join(lines) + f"\n\n{rows[0]['n']} held-out pages; cells: success % [Wilson 95% interval].\n"
