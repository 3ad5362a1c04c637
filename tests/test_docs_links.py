"""Every relative Markdown link in ``README.md`` and ``docs/*.md`` resolves.

For each inline link or image, ``[text](target)`` or ``![alt](target)``, outside fenced code
blocks and inline code spans (``http(s)://`` and ``mailto:`` targets are left alone), the
target file must exist relative to the linking file, and a ``#anchor`` into a Markdown file
(or into the same page) must name one of its headings by GitHub's slug: lowercase, spaces to
``-``, punctuation other than ``-`` and ``_`` removed, ``-1``, ``-2`` ... for repeats. The
checker itself is tested on a small page with a broken link and a broken anchor.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = ("http://", "https://", "mailto:")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"``[^`]+?``|`[^`]+`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")


def _pages() -> list[Path]:
    """The Markdown files whose links are checked: the README and every page of ``docs/``."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _without_fences(text: str) -> str:
    """``text`` with every line inside a fenced code block (fences included) blanked, so
    line numbers and offsets stay those of the file."""
    lines, inside = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            inside = not inside
            lines.append("")
        else:
            lines.append("" if inside else line)
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: links reduced to their text, lowercase,
    punctuation except ``-`` and ``_`` removed, each space a ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors of ``path``'s headings (outside code blocks); a repeated slug gets
    ``-1``, ``-2`` ... as on GitHub."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _without_fences(path.read_text(encoding="utf-8")).split("\n"):
        match = HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return frozenset(found)


def broken_links(path: Path) -> list[str]:
    """``file:line: target: reason`` for every relative link of ``path`` whose file is
    missing, or whose ``#anchor`` names no heading of the Markdown file it points into."""
    text = _without_fences(path.read_text(encoding="utf-8"))
    text = CODE_SPAN.sub(lambda span: re.sub(r"[^\n]", " ", span.group()), text)
    problems = []
    for match in LINK.finditer(text):
        target = match.group(1)
        if target.startswith(EXTERNAL):
            continue
        where = f"{path.name}:{text.count(chr(10), 0, match.start()) + 1}: {target}"
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)) if file_part else path
        if not dest.exists():
            problems.append(f"{where}: no such file {dest}")
        elif (
            anchor
            and dest.is_file()
            and dest.suffix == ".md"
            and unquote(anchor) not in anchors(dest.resolve())
        ):
            problems.append(f"{where}: no heading with anchor #{anchor} in {dest.name}")
    return problems


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Results (paper profile)", "results-paper-profile"),
        ("The paper's own settings", "the-papers-own-settings"),
        ("Your own data (`folder`)", "your-own-data-folder"),
        ("Federation on Flower (`engine: flower`)", "federation-on-flower-engine-flower"),
        ("Set-up (a fresh machine)", "set-up-a-fresh-machine"),
        ("snake_case and [a link](x.md)", "snake_case-and-a-link"),
    ],
)
def test_slug_is_githubs(heading: str, expected: str) -> None:
    """Headings map to GitHub's anchors (punctuation dropped, ``-`` and ``_`` kept)."""
    assert slug(heading) == expected


def test_checker_reports_broken_links_and_anchors(tmp_path: Path) -> None:
    """A missing file, a missing anchor in another page and a missing same-page anchor are
    reported; good links, repeated headings, external links and code are not."""
    (tmp_path / "other.md").write_text("# Other\n\n## A heading\n\n## A heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Some section (`x`)\n\n"
        "[ok](other.md) [ok](other.md#a-heading) [ok](other.md#a-heading-1)\n"
        "[ok](#some-section-x) ![ok](other.md) [web](https://example.org/missing.md)\n"
        "[bad file](missing.md) [bad\nanchor](other.md#no-such-heading)\n"
        "[bad here](#nowhere) `[code](ignored.md)`\n\n"
        "```\n[fenced](ignored.md)\n# not a heading\n```\n"
        "[not a fence heading](#not-a-heading)\n"
    )
    problems = broken_links(page)
    assert len(problems) == 4, problems
    assert problems[0].startswith("page.md:7: missing.md: no such file")
    assert problems[1].startswith("page.md:7: other.md#no-such-heading: no heading")
    assert problems[2].startswith("page.md:9: #nowhere: no heading")
    assert problems[3].startswith("page.md:15: #not-a-heading: no heading")


@pytest.mark.parametrize("page", _pages(), ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link of the README and the docs points at a file that exists and, with
    an anchor, at a heading of that file."""
    assert broken_links(page) == []


def test_readme_links_every_docs_page() -> None:
    """The README's map of the docs names every page under ``docs/``."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = {target.partition("#")[0] for target in LINK.findall(readme)}
    pages = {f"docs/{page.name}" for page in (REPO / "docs").glob("*.md")}
    assert pages, "docs/ holds no Markdown page"
    assert pages <= linked, f"not linked from README.md: {sorted(pages - linked)}"
