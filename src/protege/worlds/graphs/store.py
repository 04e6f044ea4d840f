"""On-disk hyperlink graph: CSR adjacency as memory-mapped .npy arrays plus Parquet page records.

    graph/offsets.npy     int64 [N+1]   row i's links are targets[offsets[i]:offsets[i+1]]
    graph/targets.npy     int32 [E]     target page of each link (int64 when N >= 2^31)
    graph/pages.parquet   id, title, text, links: list<struct<target: int64, anchor: string>>
    graph/summary.json    build counts (dangling links, self-loops, duplicates, dead ends, ...)
    graph/protege-manifest.json  size + SHA-256 of every file, verified on open

Offsets are int64 so that E may pass 2^31 (the paper's graph has 387M edges; a larger crawl would
overflow int32); targets stay int32 while node ids fit, which halves the dominant array. Arrays are
plain .npy so `np.load(mmap_mode="r")` opens a 38M-node graph without reading it into memory.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protege.core.errors import UserError
from protege.data.manifest import output_folder, verify_manifest, write_manifest

INT32_MAX = 2**31 - 1
KIND = "protege.nav.graph"
"""The manifest kind of a graph folder: `nav build` replaces only a folder of this kind."""
CACHES = ("embeddings-*.safetensors",)
"""Files a graph folder may hold beyond its manifest: page embeddings that
`protege.nn.text_encoders.load_or_encode` caches beside the graph (checked against the page count
when read, deleted with the graph when it is rebuilt)."""


def index_dtype(n: int):
    """Smallest of int32/int64 that holds ids (or offsets) up to `n`."""
    return np.int32 if n <= INT32_MAX else np.int64


@dataclass(frozen=True)
class Graph:
    """A directed graph in CSR form.

    offsets: int64 [N+1], non-decreasing, offsets[0] == 0, offsets[N] == E.
    targets: int32/int64 [E], each in [0, N).
    folder: where it was loaded from (None for an in-memory graph).
    """
    offsets: np.ndarray
    targets: np.ndarray
    folder: Path | None = None

    def __post_init__(self):
        if self.offsets.ndim != 1 or len(self.offsets) < 1 or self.offsets[0] != 0:
            raise ValueError(f"offsets must be 1-D starting at 0, got shape {self.offsets.shape}")
        if self.offsets[-1] != len(self.targets):
            raise ValueError(f"offsets[-1]={self.offsets[-1]} but {len(self.targets)} targets")

    @property
    def num_nodes(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_edges(self) -> int:
        return len(self.targets)

    def neighbors(self, node: int) -> np.ndarray:
        return self.targets[self.offsets[node]:self.offsets[node + 1]]

    def out_degree(self) -> np.ndarray:
        return np.diff(self.offsets)

    def pages(self, columns: list[str] | None = None):
        """The page records as a pyarrow Table (None when the graph was built without pages)."""
        if self.folder is None or not (self.folder / "pages.parquet").exists():
            return None
        import pyarrow.parquet as pq
        return pq.read_table(self.folder / "pages.parquet", columns=columns)

    def titles(self) -> list[str]:
        table = self.pages(["title"])
        if table is None:
            return [str(i) for i in range(self.num_nodes)]
        return table.column("title").to_pylist()

    def texts(self) -> list[str]:
        table = self.pages(["title", "text"])
        if table is None:
            raise UserError(f"{self.folder}: graph has no pages.parquet, so no page texts to encode")
        return [f"{t}. {x}" for t, x in zip(table.column("title").to_pylist(),
                                             table.column("text").to_pylist())]

    def summary(self) -> dict:
        if self.folder is None:
            return {}
        return json.loads((self.folder / "summary.json").read_text())


def csr_from_edges(src: np.ndarray, dst: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (offsets int64, targets) from an edge list; a stable sort keeps each row's link order."""
    order = np.argsort(src, kind="stable")
    counts = np.bincount(src, minlength=num_nodes).astype(np.int64)
    offsets = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    targets = dst[order].astype(index_dtype(num_nodes - 1), copy=False)
    return offsets, targets


def write_graph(folder: Path, offsets: np.ndarray, targets: np.ndarray, pages=None,
                summary: dict | None = None, inputs=()) -> Path:
    """Write arrays, optional pages (a pyarrow Table) and summary atomically, then the manifest.
    `folder` may be new, empty or an earlier graph; never one of `inputs` (see `output_folder`)."""
    import pyarrow.parquet as pq

    from protege.core.atomic import write_json_atomic
    folder = Path(folder)
    Graph(offsets, targets)  # validate before writing anything
    with output_folder(folder, KIND, inputs, CACHES) as tmp:
        np.save(tmp / "offsets.npy", np.ascontiguousarray(offsets, dtype=np.int64))
        np.save(tmp / "targets.npy", np.ascontiguousarray(targets))
        if pages is not None:
            pq.write_table(pages, tmp / "pages.parquet", compression="zstd")
        info = {"nodes": len(offsets) - 1, "edges": int(len(targets)),
                "targets_dtype": str(targets.dtype), **(summary or {})}
        write_json_atomic(tmp / "summary.json", info)
        write_manifest(tmp, {"kind": KIND, "nodes": info["nodes"],
                             "edges": info["edges"]})
    return folder


def open_graph(folder: Path, verify: bool = True) -> Graph:
    """Open a graph folder by mmap. `verify` checks the manifest checksums (reads every byte once)."""
    folder = Path(folder)
    if not folder.is_dir() or not (folder / "offsets.npy").exists():
        raise UserError(f"{folder}: not a graph folder (no offsets.npy); build one with "
                        f"`protege nav build`")
    if verify:
        verify_manifest(folder, unlisted=CACHES)
    offsets = np.load(folder / "offsets.npy", mmap_mode="r")
    targets = np.load(folder / "targets.npy", mmap_mode="r")
    return Graph(offsets, targets, folder)


def describe(folder: Path) -> tuple[str, dict]:
    """`check_graph` for `protege data validate`."""
    return "graph", check_graph(folder)


def check_graph(folder: Path) -> dict:
    """Open a graph folder with its checksums and check what they cannot: offsets non-decreasing,
    every target a page, one page record per node. Returns counts for a summary."""
    graph = open_graph(folder)
    offsets = np.asarray(graph.offsets)
    if len(offsets) > 1 and (np.diff(offsets) < 0).any():
        raise UserError(f"{graph.folder / 'offsets.npy'}: offsets decrease (not a CSR graph)")
    if graph.num_edges and (int(graph.targets.min()) < 0 or int(graph.targets.max()) >= graph.num_nodes):
        raise UserError(f"{graph.folder / 'targets.npy'}: a link points outside pages 0..{graph.num_nodes - 1}")
    pages = graph.pages(["id"])
    if pages is not None and pages.num_rows != graph.num_nodes:
        raise UserError(f"{graph.folder / 'pages.parquet'}: {pages.num_rows} pages for "
                        f"{graph.num_nodes} nodes")
    return {"pages": graph.num_nodes, "links": graph.num_edges,
            "dead ends": int((graph.out_degree() == 0).sum()), "page texts": pages is not None}


def pages_table(titles: list[str], texts: list[str], links: list[list[tuple[int, str]]]):
    """A pyarrow Table of page records; `links[i]` is page i's (target, anchor) list in CSR order."""
    import pyarrow as pa
    link_type = pa.list_(pa.struct([("target", pa.int64()), ("anchor", pa.string())]))
    return pa.table({
        "id": pa.array(np.arange(len(titles), dtype=np.int64)),
        "title": pa.array(titles, pa.string()),
        "text": pa.array(texts, pa.string()),
        "links": pa.array([[{"target": t, "anchor": a} for t, a in row] for row in links], link_type),
    })


DANGLING = -1
"""The raw target of a link whose page does not exist (builders resolve links to this or a page id)."""


def assemble(titles: list[str], texts: list[str], raw_links: list[list[tuple[int, str]]],
             counts: dict | None = None) -> tuple[np.ndarray, np.ndarray, object, dict]:
    """CSR arrays, pages table and build summary from resolved links (target -1 = dangling)."""
    counts = dict(counts or {})
    dangling = self_loops = duplicates = 0
    kept: list[list[tuple[int, str]]] = []
    for page, links in enumerate(raw_links):
        seen, row = set(), []
        for target, anchor in links:
            if target == DANGLING:
                dangling += 1
            elif target == page:
                self_loops += 1  # a link to the page itself never moves a navigator
            elif target in seen:
                duplicates += 1  # the first anchor text is kept
            else:
                seen.add(target)
                row.append((target, anchor))
        kept.append(row)
    n = len(titles)
    degrees = np.array([len(r) for r in kept], dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(degrees, out=offsets[1:])
    targets = np.fromiter((t for r in kept for t, _ in r), dtype=index_dtype(max(n - 1, 0)),
                          count=int(offsets[-1]))
    summary = {**counts, "pages": n, "links_resolved": int(offsets[-1]),
               "links_dangling": dangling, "self_loops": self_loops, "duplicate_edges": duplicates,
               "dead_ends": int((degrees == 0).sum()),
               "non_ascii_titles": sum(not t.isascii() for t in titles)}
    return offsets, targets, pages_table(titles, texts, kept), summary
