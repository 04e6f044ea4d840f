"""Folder-of-HTML builder: every .html/.htm file under a folder is a page; <a href> links between them
are edges. Relative links are resolved against the linking page, fragments and queries dropped,
percent-escapes decoded (so `caf%C3%A9.html` finds `café.html`), links leaving the folder or using
another scheme (http:, mailto:) are counted and ignored. `html.parser` tolerates broken markup
(unclosed tags, stray `<`), which is what offline site mirrors contain.
"""

import posixpath
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from protege.core.errors import UserError

_SKIP_TEXT = {"script", "style", "head", "noscript"}
_MAX_TEXT_CHARS = 20_000  # page texts feed a sentence encoder that reads 256 tokens anyway


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
            self.links.append((self._href, " ".join("".join(self._anchor).split())))
        self._href = None

    def close(self):
        super().close()
        self._close_anchor()


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


def build_html(folder: Path) -> tuple:
    from protege.worlds.graphs.builders import DANGLING, assemble
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of HTML pages")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".html", ".htm"))
    if not files:
        raise UserError(f"{folder}: no .html or .htm files found")
    keys = [p.relative_to(folder).as_posix() for p in files]
    page_of = {k: i for i, k in enumerate(keys)}
    titles, texts, raw_links = [], [], []
    outside = undecodable = 0
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
        texts.append(" ".join(" ".join(parser.text).split())[:_MAX_TEXT_CHARS])
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
    counts = {"files": len(files), "links_outside_folder": outside, "files_not_utf8": undecodable}
    return assemble(titles, texts, raw_links, counts)
