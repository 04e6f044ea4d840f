"""How alike page texts look to the encoder: mean cosine of random page pairs against linked page pairs,
with the whole visible text of each page against the clean text `nav build html` now stores (MiniLM,
128 tokens), on a sample of pages of a built HTML graph (docs/results/wikinav.md).

    PYTHONPATH=src python benchmarks/html_boilerplate.py data/nav-text/pydocs /usr/share/doc/python3.11/html 100

Last line: one JSON object.
"""

import json
import sys
from pathlib import Path

import numpy as np

from protege.nn.text_encoders import encode_texts
from protege.worlds.graphs.html import _PageParser
from protege.worlds.graphs.store import open_graph


def whole_text(site: Path, path: str) -> str:
    """Title and every visible text of the page, as the builder read it before main-content extraction."""
    parser = _PageParser()
    parser.feed((site / path).read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return " ".join(parser.title.split()) + ". " + " ".join(" ".join(parser.text).split())


def mean_cosine(emb: np.ndarray, index: dict, a, b) -> float:
    return float(np.mean([emb[index[x]] @ emb[index[y]] for x, y in zip(a, b)]))


def main():
    graph_dir, site, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    graph = open_graph(graph_dir)
    pages = graph.pages(["title", "text", "path"]).to_pylist()
    rng = np.random.default_rng(0)
    sources = rng.choice(np.flatnonzero(graph.out_degree() > 0), n, replace=False)
    linked = np.array([rng.choice(graph.neighbors(s)) for s in sources])
    unrelated = rng.choice(graph.num_nodes, n)
    sample = sorted(set(sources) | set(linked) | set(unrelated))
    index = {p: i for i, p in enumerate(sample)}
    texts = {"whole_text": lambda p: whole_text(site, pages[p]["path"]),
             "clean_text": lambda p: f"{pages[p]['title']}. {pages[p]['text']}"}
    result = {"pages_encoded": len(sample), "pairs": n}
    for name, text in texts.items():
        emb = encode_texts([text(p) for p in sample], "minilm")
        result[name] = {"random_pairs": round(mean_cosine(emb, index, sources, unrelated), 3),
                        "linked_pairs": round(mean_cosine(emb, index, sources, linked), 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
