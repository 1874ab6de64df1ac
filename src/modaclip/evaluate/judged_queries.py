"""Judged query sets: queries with graded relevance judgments of catalog products, in the layouts IR teams keep.

- `beir:<folder>`: the BEIR layout, `queries.jsonl` (one `{"_id": ..., "text": ...}` a line) and
  `qrels/test.tsv` (a `query-id corpus-id score` header, then one tab-separated judgment a line);
- `trec:<qrels file>:<queries tsv>`: TREC qrels (`query-id iteration product-id grade`, whitespace
  separated) and a `query-id<TAB>text` file without header, as MS MARCO and TREC tracks ship them.

The corpus is the catalog: a judged document id is a product id. Grades are integers; 0 and below
mean not relevant. A line that cannot be read stops the stage with the file and line number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from modaclip.core.errors import ModaclipError

BEIR_QUERIES = "queries.jsonl"
BEIR_QRELS = Path("qrels") / "test.tsv"
BEIR_HEADER = ("query-id", "corpus-id", "score")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, kw_only=True)
class JudgedQueries:
    """One set: query id -> text, and query id -> {product id: grade}. `notes` are counts its source adds
    to the set's summary in eval.json (the shoppers' set: queries dropped for equalling a training text)."""

    name: str
    source: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    notes: dict[str, int] = field(default_factory=dict)


def set_name(stem: str) -> str:
    """A set's key in eval.json: the folder's or file's stem with anything but letters, digits, _ and - made _,
    so the set's figures stay addressable by dotted path (`finetuned.query_sets.<name>.vector.ndcg@10`)."""
    return _UNSAFE_NAME.sub("_", stem).strip("_") or "queries"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line; a file that cannot be read is one error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ModaclipError(f"{path}: cannot read the judged query file ({err})") from err
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def read_beir_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for number, line in _lines(path):
        try:
            record = json.loads(line)
            query_id, text = str(record["_id"]), record["text"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ModaclipError(f'{path}:{number}: expected {{"_id": ..., "text": ...}}, got {line[:80]!r}') from err
        _add_query(queries, query_id, text, path=path, number=number)
    return queries


def read_tsv_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for number, line in _lines(path):
        parts = line.split("\t")
        if len(parts) != 2:
            raise ModaclipError(f"{path}:{number}: expected query-id<TAB>text, got {len(parts)} field(s)")
        _add_query(queries, parts[0].strip(), parts[1], path=path, number=number)
    return queries


def _add_query(queries: dict[str, str], query_id: str, text: object, *, path: Path, number: int) -> None:
    if not isinstance(text, str) or not text.strip() or not query_id:
        raise ModaclipError(f"{path}:{number}: query {query_id!r} has no text")
    if query_id in queries:
        raise ModaclipError(f"{path}:{number}: query id {query_id!r} appears twice")
    queries[query_id] = " ".join(text.split())


def read_beir_qrels(path: Path) -> list[tuple[int, str, str, int]]:
    """(line, query id, product id, grade) of each judgment; the header line is required, as BEIR writes it."""
    rows = list(_lines(path))
    if not rows or tuple(rows[0][1].split("\t")) != BEIR_HEADER:
        raise ModaclipError(f"{path}:1: expected the header {chr(9).join(BEIR_HEADER)!r}")
    return [_judgment(line.split("\t"), 3, path, number) for number, line in rows[1:]]


def read_trec_qrels(path: Path) -> list[tuple[int, str, str, int]]:
    return [_judgment(line.split(), 4, path, number) for number, line in _lines(path)]


def _judgment(parts: list[str], width: int, path: Path, number: int) -> tuple[int, str, str, int]:
    layout = "query-id corpus-id score" if width == 3 else "query-id iteration product-id grade"
    if len(parts) != width:
        raise ModaclipError(f"{path}:{number}: expected {width} fields ({layout}), got {len(parts)}")
    try:
        grade = int(parts[-1])
    except ValueError as err:
        raise ModaclipError(f"{path}:{number}: grade {parts[-1]!r} is not a whole number") from err
    return number, parts[0].strip(), parts[-2].strip(), grade


def judge(queries: dict[str, str], judgments: list[tuple[int, str, str, int]], path: Path) -> dict[str, dict[str, int]]:
    """Judgments grouped by query; one for a query the queries file lacks, or a pair judged twice, is an error."""
    qrels: dict[str, dict[str, int]] = {}
    for number, query_id, product_id, grade in judgments:
        if query_id not in queries:
            raise ModaclipError(f"{path}:{number}: query id {query_id!r} is not in the queries file")
        judged = qrels.setdefault(query_id, {})
        if product_id in judged:
            raise ModaclipError(f"{path}:{number}: query {query_id!r} judges product {product_id!r} twice")
        judged[product_id] = grade
    if not qrels:
        raise ModaclipError(f"{path}: no judgments")
    return qrels


def load_beir(folder: Path, source: str) -> JudgedQueries:
    queries = read_beir_queries(_existing(folder / BEIR_QUERIES, source))
    qrels_path = _existing(folder / BEIR_QRELS, source)
    qrels = judge(queries, read_beir_qrels(qrels_path), qrels_path)
    return JudgedQueries(name=set_name(folder.name), source=source, queries=queries, qrels=qrels)


def load_trec(qrels_path: Path, queries_path: Path, source: str) -> JudgedQueries:
    queries = read_tsv_queries(_existing(queries_path, source))
    qrels = judge(queries, read_trec_qrels(_existing(qrels_path, source)), qrels_path)
    return JudgedQueries(name=set_name(qrels_path.stem), source=source, queries=queries, qrels=qrels)


def _existing(path: Path, source: str) -> Path:
    if not path.is_file():
        raise ModaclipError(f"evaluate.query_sets: {path} not found (from {source!r}); fix the path or remove it")
    return path
