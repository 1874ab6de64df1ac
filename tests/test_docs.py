"""The Markdown docs hold together: every relative link and #anchor resolves (from the docs, docstrings and
params.yaml comments too), and no paragraph is said twice."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted(
    [REPO / "README.md", REPO / "BENCHMARKS.md", REPO / "benchmarks" / "README.md", *(REPO / "docs").glob("*.md")]
)
# Code and params.yaml cite docs as `docs/scaling.md#index-types`, a path from the repository root and an anchor.
CITING = sorted([REPO / "params.yaml", *(REPO / "src").rglob("*.py"), *(REPO / "benchmarks").glob("*.py")])
CITED_ANCHOR = re.compile(r"(?<![\w/.:-])((?:[\w-]+/)*[\w-]+\.md)#([\w-]+)")
BENCHMARKS_CITED = re.compile(r"BENCHMARKS\.md(#[\w-]+)?")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")
HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$")
FENCE = re.compile(r"^ *(```|~~~)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...
SHORTEST_CHECKED_PARAGRAPH = 120  # characters: shorter blocks ("Load average 4-7.") may recur


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (code may show Markdown without meaning it)."""
    lines, in_code = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
            lines.append("")
        else:
            lines.append("" if in_code else line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = defaultdict(int)
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            found.add(f"{base}-{seen[base]}" if seen[base] else base)
            seen[base] += 1
    return found


def links(path: Path) -> list[str]:
    text = "\n".join(prose_lines(path.read_text(encoding="utf-8")))
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
    return [target for match in LINK.finditer(text) for target in match.groups() if target]


def paragraphs(path: Path) -> list[str]:
    blocks = "\n".join(prose_lines(path.read_text(encoding="utf-8"))).split("\n\n")
    return [" ".join(block.split()) for block in blocks if not block.lstrip().startswith(("|", "#"))]


def test_docs_exist() -> None:
    assert {path.name for path in DOCS} >= {"README.md", "BENCHMARKS.md", "architecture.md", "search.md"}


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(REPO)))
def test_relative_links_and_anchors_resolve(path: Path) -> None:
    broken = []
    for target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(REPO) if linked.is_relative_to(REPO) else linked}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor} in {linked.relative_to(REPO)}")
    assert not broken, f"{path.relative_to(REPO)}: broken links:\n" + "\n".join(broken)


def cited_anchors(path: Path) -> list[tuple[str, str]]:
    """(file, anchor) for each `some/doc.md#anchor` in a source file or params.yaml."""
    return CITED_ANCHOR.findall(path.read_text(encoding="utf-8"))


def broken_citations(path: Path) -> list[str]:
    broken = []
    for file_part, anchor in cited_anchors(path):
        linked = REPO / file_part
        if not linked.exists():
            broken.append(f"{file_part}#{anchor}: no file {file_part}")
        elif anchor not in anchors(linked):
            broken.append(f"{file_part}#{anchor}: no heading with that anchor in {file_part}")
    text = path.read_text(encoding="utf-8")
    broken += [
        "BENCHMARKS.md without an #anchor: say which section" for m in BENCHMARKS_CITED.finditer(text) if not m.group(1)
    ]
    return broken


@pytest.mark.parametrize("path", CITING, ids=lambda path: str(path.relative_to(REPO)))
def test_anchors_cited_from_code_and_params_resolve(path: Path) -> None:
    broken = broken_citations(path)
    assert not broken, f"{path.relative_to(REPO)}: broken citations:\n" + "\n".join(broken)


def test_a_broken_citation_is_caught(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text(
        '"""Measured in BENCHMARKS.md#no-such-section, see docs/nowhere.md#x and BENCHMARKS.md alone;\n'
        'fine: BENCHMARKS.md#summary."""\n'
    )
    assert broken_citations(source) == [
        "BENCHMARKS.md#no-such-section: no heading with that anchor in BENCHMARKS.md",
        "docs/nowhere.md#x: no file docs/nowhere.md",
        "BENCHMARKS.md without an #anchor: say which section",
    ]


def test_benchmarks_md_is_one_page() -> None:
    assert len((REPO / "BENCHMARKS.md").read_text(encoding="utf-8").splitlines()) < 200


def test_no_paragraph_is_said_twice() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path in DOCS:
        for paragraph in paragraphs(path):
            if len(paragraph) >= SHORTEST_CHECKED_PARAGRAPH:
                where[paragraph].append(str(path.relative_to(REPO)))
    repeated = {text[:80]: files for text, files in where.items() if len(files) > 1}
    assert not repeated, f"paragraphs found in several places (keep one, link to it): {repeated}"


def test_slug_follows_github() -> None:
    assert slug("Hybrid vs pure vector search: attribute Precision@10") == (
        "hybrid-vs-pure-vector-search-attribute-precision10"
    )
    assert slug("Real product photos (2,898 Kaggle images)") == "real-product-photos-2898-kaggle-images"
    assert slug("What made the difference: the forward pass left the server's GIL") == (
        "what-made-the-difference-the-forward-pass-left-the-servers-gil"
    )
    assert slug("`multipos` and `--model`") == "multipos-and---model"
