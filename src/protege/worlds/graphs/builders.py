"""Graph builders: dictd databases with {cross-references}, folders of HTML pages, edge lists.

Each builder turns its source into page titles, texts and raw links (target id or -1 when the
target does not exist) and hands them to `store.assemble`, which drops dangling links, self-loops and
duplicate edges, counts everything it dropped, and writes the graph with `store.write_graph`.
"""

import re
from pathlib import Path

from protege.core.errors import UserError, unknown_name
from protege.data.manifest import check_output_folder
from protege.data.text import read_jsonl, utf8_lines
from protege.worlds.graphs import store
from protege.worlds.graphs.html import build_html
from protege.worlds.graphs.store import DANGLING, assemble
from protege.worlds.text.dictd import read_dictd

SOURCE_TYPES = ("dictd", "html", "edgelist")

_XREF = re.compile(r"\{([^{}]*)\}")
_URL_IN_XREF = re.compile(r"\((\S*[./]\S*)\)$")


def build(source_type: str, path: Path, out: Path, progress=None, **options) -> dict:
    """Build the graph of `source_type` at `path` into folder `out`; returns the build summary.
    `options` go to the builder (None = its default); `progress(n)` is called as HTML pages are read."""
    builders = {"dictd": build_dictd, "html": build_html, "edgelist": build_edgelist}
    if source_type not in builders:
        raise unknown_name("source type", source_type, SOURCE_TYPES)
    if options.get("texts") is not None and source_type != "edgelist":
        raise UserError(f"--texts is for edge lists only; a {source_type} source carries its own "
                        f"page texts")
    options = {k: v for k, v in options.items() if v is not None}
    inputs = [path, *(v for v in options.values() if isinstance(v, Path))]  # files the build reads
    if source_type == "html" and progress is not None:
        options["progress"] = progress
    check_output_folder(out, store.KIND, inputs, store.CACHES)  # before the work
    offsets, targets, pages, summary = builders[source_type](Path(path), **options)
    if summary["pages"] == 0:
        raise UserError(f"{path}: no pages found (empty {source_type} source); nothing written")
    if summary["links_resolved"] == 0:
        raise UserError(f"{path}: {summary['pages']} pages but no link between two of them "
                        f"(dangling {summary['links_dangling']}, self-loops {summary['self_loops']}); "
                        f"a graph without links cannot be navigated, nothing written")
    summary = {"source_type": source_type, "source": str(path), **summary}
    store.write_graph(out, offsets, targets, pages, summary, inputs)
    return store.open_graph(out, verify=False).summary()


# dictd ---------------------------------------------------------------------------------------------
def build_dictd(path: Path) -> tuple:
    """Pages are the distinct entries of the database; every headword naming an entry resolves to it.

    dictd lists an entry once per headword (FOLDOC: 15,247 headwords, 12,014 entries), so aliases
    such as "AST" and "abstract syntax tree" are one page: two pages with the same text would make a
    target indistinguishable from its alias. A headword naming several entries resolves to the first.
    """
    entries = read_dictd(path)
    head_to_page: dict[str, int] = {}
    for page, entry in enumerate(entries):
        for word in entry.headwords:
            head_to_page.setdefault(_norm_key(word), page)
    titles, texts, raw_links, external, singular = [], [], [], 0, 0
    for entry in entries:
        titles.append(entry.text.strip().split("\n", 1)[0].strip() or entry.headwords[0])
        texts.append(entry.text.strip())
        links = []
        for match in _XREF.finditer(entry.text):
            anchor = " ".join(match.group(1).split())
            if "://" in anchor or _URL_IN_XREF.search(anchor):
                external += 1  # FOLDOC writes web links as {label (url)}
                continue
            target = _lookup(head_to_page, _norm_key(anchor))
            singular += target != head_to_page.get(_norm_key(anchor), DANGLING)
            links.append((target, anchor))
        raw_links.append(links)
    counts = {"headwords": sum(len(e.headwords) for e in entries), "links_external": external,
              "links_by_singular": singular}
    return assemble(titles, texts, raw_links, counts)


def _lookup(head_to_page: dict, key: str) -> int:
    """Exact headword, else its singular: FOLDOC writes {abstract machines} for "abstract machine"
    (about 4,500 of its cross-references); dictd's exact lookup would leave them dangling."""
    if key in head_to_page:
        return head_to_page[key]
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
        if key.endswith(suffix) and key[: -len(suffix)] + repl in head_to_page:
            return head_to_page[key[: -len(suffix)] + repl]
    return DANGLING


def _norm_key(text: str) -> str:
    return " ".join(text.split()).lower()


# edge list + JSONL -----------------------------------------------------------------------------
def build_edgelist(path: Path, texts: Path | None = None) -> tuple:
    """`path`: lines `source target [anchor...]` (whitespace separated, # comments); `texts`: JSONL
    rows {"id", "title"?, "text"?}. Without `texts`, pages are the ids seen in the edge list."""
    if not path.is_file():
        raise UserError(f"{path}: edge list not found" if not path.exists() else
                        f"{path}: is a folder, not an edge list file")
    ids, titles, bodies = [], [], []
    if texts is not None:
        if not Path(texts).is_file():
            raise UserError(f"{texts}: page texts (JSONL) not found" if not Path(texts).exists() else
                            f"{texts}: is a folder, not a JSONL file of page texts")
        for lineno, row in _page_rows(Path(texts)):
            if "id" not in row:
                raise UserError(f"{texts}:{lineno}: missing field 'id'")
            ids.append(str(row["id"]))
            titles.append(str(row.get("title", row["id"])))
            bodies.append(str(row.get("text", "")))
    edges = list(_edge_lines(path))
    if texts is None:
        ids = sorted({e[0] for e in edges} | {e[1] for e in edges})
        titles, bodies = list(ids), [""] * len(ids)
    page_of = {}
    for i, key in enumerate(ids):
        page_of.setdefault(key, i)
    raw_links = [[] for _ in ids]
    unknown_source = 0
    for src, dst, anchor in edges:
        if src not in page_of:
            unknown_source += 1
            continue
        raw_links[page_of[src]].append((page_of.get(dst, DANGLING), anchor))
    counts = {"edge_lines": len(edges), "links_unknown_source": unknown_source,
              "duplicate_ids": len(ids) - len(page_of)}
    return assemble(titles, bodies, raw_links, counts)


def _page_rows(path: Path):
    for lineno, row in read_jsonl(path, "JSONL page texts"):
        if not isinstance(row, dict):
            raise UserError(f"{path} line {lineno}: expected a JSON object")
        yield lineno, row


def _edge_lines(path: Path):
    for lineno, line in utf8_lines(path, "an edge list ('source target [anchor]' lines)"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise UserError(f"{path}:{lineno}: expected 'source target [anchor]', got {line[:60]!r}")
        yield parts[0], parts[1], parts[2] if len(parts) > 2 else ""
