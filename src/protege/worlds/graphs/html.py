"""Folder-of-HTML builder: every .html/.htm file under a folder is a page; <a href> links between them
are edges. Relative links are resolved against the linking page, fragments and queries dropped,
percent-escapes decoded (so `caf%C3%A9.html` finds `café.html`), links leaving the folder or using
another scheme (http:, mailto:) are counted and ignored. `html.parser` reads the links: it tolerates
broken markup (unclosed tags, stray `<`), which is what offline site mirrors contain.

Page text is the page's main content, not its chrome. Documentation sites repeat a sidebar, a header
and a footer on every page; encoded whole, every page starts with the same few hundred words (the
encoder reads 128 tokens) and unrelated pages look alike. trafilatura finds the main content: it is
maintained (2.x), ranks at or near the top of the published main-content extraction benchmarks
(ScrapingHub's article-extraction benchmark; Bevendorff et al., SIGIR 2023), runs on lxml, which the
project already uses, and falls back to its own readability and jusText ports on pages its heuristics
do not cover; readability-lxml, the other candidate, is one of those fallbacks and sees fewer
releases. A page where it finds nothing (a stub, a frame set) keeps its whole visible text, counted
in the summary.

The text the encoders read (the `text` column) is built so that its first tokens say what the page
is: headings of the main content, then the anchor texts of links into the page (how other pages name
it), then the main content. The separate columns keep each part, plus the page's source path and URL.
"""

import posixpath
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from protege.core.errors import UserError
from protege.worlds.graphs.store import DANGLING, assemble

_SKIP_TEXT = {"script", "style", "head", "noscript"}
_MAX_TEXT_CHARS = 20_000  # page texts feed a sentence encoder that reads 256 tokens anyway
_MAX_HEADINGS = 10
_MAX_ANCHORS = 8
_GENERIC_ANCHORS = {"next", "previous", "prev", "up", "home", "index", "top", "back", "next page",
                    "previous page", "here", "link", "more", "source", "show source"}
_TITLE_SEPARATORS = re.compile(r"\s+(?:—|–|-|\||::|»)\s+")


class _PageParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title, self.text, self.links = "", [], []
        self._skip = 0
        self._in_title = False
        self._href: str | None = None
        self._anchor: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TEXT:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        if tag == "a":
            self._close_anchor()
            href = dict(attrs).get("href")
            self._href, self._anchor = href, []

    def handle_endtag(self, tag):
        if tag in _SKIP_TEXT and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False
        if tag == "a":
            self._close_anchor()

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.text.append(data)
        if self._href is not None:
            self._anchor.append(data)

    def _close_anchor(self):
        if self._href is not None:
            self.links.append((self._href, _fold("".join(self._anchor))))
        self._href = None

    def close(self):
        super().close()
        self._close_anchor()


def _fold(text: str) -> str:
    """Whitespace folded; Sphinx's permalink sign `¶` dropped (it ends every heading)."""
    return " ".join(text.replace("¶", " ").split())


def resolve_href(page: str, href: str) -> str | None:
    """Folder-relative path a link from `page` points to, or None when it leaves the folder."""
    parts = urlsplit(href.strip())
    if parts.scheme or parts.netloc:
        return None
    if not parts.path:
        return page  # "#section" or "?q": the page itself
    target = unquote(parts.path)
    joined = target.lstrip("/") if target.startswith("/") else posixpath.join(posixpath.dirname(page), target)
    joined = posixpath.normpath(joined)
    if joined == ".." or joined.startswith("../"):
        return None
    if target.endswith("/") or joined == ".":
        joined = posixpath.join("" if joined == "." else joined, "index.html")
    return joined


def main_content(source: str) -> tuple[str, list[str]] | None:
    """(main text, headings) of a page by trafilatura, or None when it finds no main content."""
    import logging

    import trafilatura
    from lxml import etree
    logging.getLogger("trafilatura").setLevel(logging.ERROR)  # it logs every page it finds empty
    xml = trafilatura.extract(source, output_format="xml", include_tables=True, include_links=False,
                              include_comments=False, include_images=False, favor_recall=True,
                              deduplicate=False)
    if not xml:
        return None
    root = etree.fromstring(xml.encode("utf-8"))
    main = root.find("main")
    if main is None:
        main = root
    headings = [_fold("".join(h.itertext())) for h in main.iter("head")]
    blocks = [_fold("".join(el.itertext())) for el in main]
    text = " ".join(b for b in blocks if b)
    return (text, [h for h in headings if h]) if text else None


def strip_site_suffix(titles: list[str]) -> tuple[list[str], str]:
    """Titles without the site name most of them end with ("os — ... — Python 3.11.4 documentation"):
    it carries nothing that tells pages apart and takes encoder tokens. Returns (titles, suffix)."""
    last = Counter(_TITLE_SEPARATORS.split(t)[-1] for t in titles if _TITLE_SEPARATORS.search(t))
    if not last:
        return titles, ""
    suffix, count = last.most_common(1)[0]
    if count <= len(titles) / 2:
        return titles, ""
    out = []
    for t in titles:
        parts = _TITLE_SEPARATORS.split(t)
        out.append(t[: t.rfind(suffix)].rstrip(" —–-|:»") if len(parts) > 1 and parts[-1] == suffix else t)
    return [t or s for t, s in zip(out, titles)], suffix


def common_targets(raw_links: list[list[tuple[int, str]]], fraction: float) -> set[int]:
    """Pages linked from more than `fraction` of all pages: navigation chrome (the home page, the
    index, the copyright notice in every footer), not a choice that says where a target is."""
    linked_from = Counter(t for links in raw_links for t in {t for t, _ in links if t >= 0})
    limit = fraction * len(raw_links)
    return {t for t, n in linked_from.items() if n > limit}


def in_anchors(raw_links: list[list[tuple[int, str]]], titles: list[str]) -> list[list[str]]:
    """Per page, the distinct texts of links into it from other pages, most frequent first (at most
    8); generic ones ("next", "index") and the page's own title are left out."""
    counts = [Counter() for _ in titles]
    for page, links in enumerate(raw_links):
        for target, anchor in links:
            if target >= 0 and target != page and len(anchor) > 2 \
                    and anchor.lower() not in _GENERIC_ANCHORS:
                counts[target][anchor] += 1
    return [[a for a, _ in c.most_common() if a.lower() != title.lower()][:_MAX_ANCHORS]
            for c, title in zip(counts, titles)]


def page_url(key: str, file: Path, base_url: str | None) -> str:
    return urljoin(base_url if base_url.endswith("/") else base_url + "/", key) if base_url \
        else file.resolve().as_uri()


def build_html(folder: Path, drop_common_links: float | None = None, base_url: str | None = None,
               progress=None) -> tuple:
    """Pages, links and clean texts of a folder of HTML files.

    drop_common_links: drop every link to a page that more than this fraction of all pages link to
        (navigation chrome), so the policy never chooses among them; None keeps every link.
    base_url: the site's address; a page's URL is base_url + its path (default: its file:// URI).
    progress: called as progress(0, total=number of files) first, then progress(1) after each page.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of HTML pages")
    if drop_common_links is not None and not 0 < drop_common_links < 1:
        raise UserError(f"--drop-common-links must be a fraction of pages in (0, 1), got {drop_common_links}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".html", ".htm"))
    if not files:
        raise UserError(f"{folder}: no .html or .htm files found")
    keys = [p.relative_to(folder).as_posix() for p in files]
    page_of = {k: i for i, k in enumerate(keys)}
    if progress is not None:
        progress(0, total=len(files))
    titles, contents, headings, raw_links = [], [], [], []
    outside = undecodable = fallback = 0
    for key, file in zip(keys, files):
        raw = file.read_bytes()
        try:
            source = raw.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
            source = raw.decode("latin-1")  # every byte decodes; old mirrors are often latin-1
        parser = _PageParser()
        parser.feed(source)
        parser.close()
        titles.append(" ".join(parser.title.split()) or key)
        extracted = main_content(source)
        if extracted is None:
            fallback += 1
            extracted = (" ".join(" ".join(parser.text).split()), [])
        contents.append(extracted[0][:_MAX_TEXT_CHARS])
        headings.append(list(dict.fromkeys(extracted[1]))[:_MAX_HEADINGS])
        links = []
        for href, anchor in parser.links:
            if not href:
                continue
            target = resolve_href(key, href)
            if target is None:
                outside += 1
                continue
            links.append((page_of.get(target, DANGLING), anchor))
        raw_links.append(links)
        if progress is not None:
            progress(1)
    titles, suffix = strip_site_suffix(titles)
    anchors = in_anchors(raw_links, titles)
    counts = {"files": len(files), "links_outside_folder": outside, "files_not_utf8": undecodable,
              "pages_main_content": len(files) - fallback, "pages_whole_text_fallback": fallback,
              "title_suffix_stripped": suffix}
    if drop_common_links is not None:
        chrome = common_targets(raw_links, drop_common_links)
        before = sum(len(r) for r in raw_links)
        raw_links = [[(t, a) for t, a in r if t not in chrome] for r in raw_links]
        counts.update({"drop_common_links": drop_common_links, "common_link_targets": len(chrome),
                       "links_dropped_common": before - sum(len(r) for r in raw_links),
                       "common_link_examples": ", ".join(sorted(keys[t] for t in chrome)[:8])})
    texts = [encoder_text(h, a, c) for h, a, c in zip(headings, anchors, contents)]
    offsets, targets, pages, summary = assemble(titles, texts, raw_links, counts)
    import pyarrow as pa
    for name, column in (("content", pa.array(contents, pa.string())),
                         ("headings", pa.array(headings, pa.list_(pa.string()))),
                         ("in_anchors", pa.array(anchors, pa.list_(pa.string()))),
                         ("path", pa.array(keys, pa.string())),
                         ("url", pa.array([page_url(k, f, base_url) for k, f in zip(keys, files)],
                                          pa.string()))):
        pages = pages.append_column(name, column)
    return offsets, targets, pages, summary


def encoder_text(headings: list[str], anchors: list[str], content: str) -> str:
    """Headings, then the anchor texts of links into the page, then its main content."""
    parts = [" · ".join(headings), ("Linked as: " + "; ".join(anchors)) if anchors else "", content]
    return ". ".join(p for p in parts if p)
