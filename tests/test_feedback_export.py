"""`modaclip feedback export` on hand-made logs with known values: split, rare queries, IPS weights, matching."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from modaclip.core.config import FeedbackExportParams
from modaclip.core.errors import ModaclipError
from modaclip.evaluate.judged_queries import load_beir
from modaclip.feedback import log_schema
from modaclip.feedback.export import PAIRS, export_feedback, inverse_propensity, normalise, query_id
from modaclip.feedback.log_schema import EventRecord, SearchRecord

PARAMS = FeedbackExportParams(heldout_fraction=0.25, min_shoppers=2, eta=1.0, max_weight=4.0)


def search(n: int, query: str | None, session: str | None, shown: list[str], kind: str = "text", offset: int = 0):
    return SearchRecord(
        search_id=f"s{n:02d}",
        at=1000.0 + n,
        kind=kind,
        query=query,
        filters={},
        session=session,
        model="v1",
        mode="vector",
        offset=offset,
        shown=shown,
    )


def event(n: int, product: str, what: str = "open", search_id: str | None = None) -> EventRecord:
    return EventRecord(search_id or f"s{n:02d}", product, what, 2000.0 + n)


def hand_made_log(path: Path) -> Path:
    """8 text searches (6 training, 2 held out), one image search, and events of every kind."""
    searches = [
        search(1, "Red Dress", "a", ["1", "2", "3"]),
        search(2, "  red   dress ", "b", ["2", "1", "3"]),
        search(3, "blue jeans", "a", ["5", "6"], offset=10),  # page 2: positions 11 and 12
        search(4, "blue jeans", None, ["6", "5"]),  # no session: its own shopper, so blue jeans has 2
        search(5, "rare query", "c", ["1"]),  # one shopper only: dropped
        search(6, "rare query", "c", ["1"]),
        search(7, "red dress", "d", ["3", "1"]),  # held out, seen in training
        search(8, "blue jeans", "e", ["6"]),  # held out
        search(9, None, "a", ["9"], kind="similar_image"),
    ]
    events = [
        event(1, "1"),  # red dress -> 1 at position 1: weight 1
        event(1, "1", "add"),  # same search, same product: best grade 2, weight 2 * 1
        event(2, "1"),  # position 2: weight 1 * 2
        event(2, "3", "add"),  # position 3: 2 * 3 = 6
        event(3, "6"),  # position 12: clipped at 4
        event(5, "1"),  # rare: dropped
        event(7, "1", "add"),  # held out
        event(8, "6"),  # held out
        event(9, "9"),  # an image search: no pair
        event(0, "1", search_id="nope"),  # a search this log lacks
        event(4, "7"),  # a product the search did not show
    ]
    conn = log_schema.connect(path)
    log_schema.write(conn, searches, events)
    conn.close()
    return path


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return hand_made_log(tmp_path / "log.sqlite")


def test_known_pairs_weights_split_and_counts(log_path: Path, tmp_path: Path) -> None:
    summary = export_feedback([log_path], tmp_path / "out", PARAMS)
    pairs = pd.read_parquet(tmp_path / "out" / PAIRS)
    assert pairs.to_dict("records") == [
        {"query": "blue jeans", "product_id": "6", "label": 1, "clicks": 1, "weight": 4.0},
        {"query": "red dress", "product_id": "1", "label": 2, "clicks": 2, "weight": 2.0 + 2.0},
        {"query": "red dress", "product_id": "3", "label": 2, "clicks": 1, "weight": 6.0},
    ]
    assert summary["text_searches"] == 8 and summary["searches"] == 9 and summary["events"] == 11
    assert summary["training_searches"] == 6 and summary["heldout_searches"] == 2
    assert summary["split_at"] == 1007.0
    assert summary["queries_dropped_as_rare"] == 1 and summary["searches_dropped_as_rare"] == 2
    assert summary["unmatched_events"] == {"search_not_in_log": 1, "product_not_shown": 1}
    heldout = load_beir(tmp_path / "out" / "heldout", "beir:heldout")
    assert heldout.queries == {query_id("blue jeans"): "blue jeans", query_id("red dress"): "red dress"}
    assert heldout.qrels == {query_id("blue jeans"): {"6": 1}, query_id("red dress"): {"1": 2}}
    assert summary["heldout_queries"] == 2 and summary["heldout_unseen_queries"] == 0


def test_unseen_held_out_queries_are_those_never_typed_in_training(tmp_path: Path) -> None:
    conn = log_schema.connect(tmp_path / "log.sqlite")
    searches = [
        search(n, q, s, ["1", "2"]) for n, (q, s) in enumerate([("tee", "a"), ("tee", "b"), ("hat", "a"), ("hat", "b")])
    ]
    log_schema.write(conn, searches, [event(2, "2"), event(3, "1", "add")])
    conn.close()
    summary = export_feedback([tmp_path / "log.sqlite"], tmp_path / "out", FeedbackExportParams(heldout_fraction=0.5))
    unseen = load_beir(tmp_path / "out" / "heldout_unseen", "beir:unseen")
    assert unseen.queries == {query_id("hat"): "hat"} and unseen.qrels == {query_id("hat"): {"2": 1, "1": 2}}
    assert summary["pairs"] == 0 and summary["heldout_unseen_queries"] == 1


def test_export_of_a_fixed_log_is_byte_identical(log_path: Path, tmp_path: Path) -> None:
    export_feedback([log_path], tmp_path / "a", PARAMS)
    export_feedback([log_path], tmp_path / "b", PARAMS)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 6
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_several_logs_merge(log_path: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    conn = log_schema.connect(other)
    log_schema.write(conn, [], [event(0, "2", search_id="s01")])  # an event another server wrote
    conn.close()
    summary = export_feedback([log_path, other], tmp_path / "out", PARAMS)
    pairs = pd.read_parquet(tmp_path / "out" / PAIRS)
    assert ("red dress", "2") in set(zip(pairs["query"], pairs["product_id"]))
    assert summary["events"] == 12 and summary["unmatched_events"]["search_not_in_log"] == 1


def test_normalise_and_propensity() -> None:
    assert normalise("  Red\tSTRIPED   dress ") == "red striped dress"
    assert inverse_propensity(1, 1.0, 10.0) == 1.0
    assert inverse_propensity(4, 0.5, 10.0) == 2.0
    assert inverse_propensity(50, 1.0, 10.0) == 10.0


def test_summary_is_json(log_path: Path, tmp_path: Path) -> None:
    export_feedback([log_path], tmp_path / "out", PARAMS)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["pairs"] == 3


def test_an_empty_log_exports_empty_files(tmp_path: Path) -> None:
    log_schema.connect(tmp_path / "empty.sqlite").close()
    summary = export_feedback([tmp_path / "empty.sqlite"], tmp_path / "out", PARAMS)
    assert (summary["searches"], summary["pairs"], summary["heldout_queries"], summary["split_at"]) == (0, 0, 0, None)
    assert len(pd.read_parquet(tmp_path / "out" / PAIRS)) == 0


def test_a_file_that_is_not_a_log_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.sqlite").write_text("not a database")
    with pytest.raises(ModaclipError, match=r"notes\.sqlite: not a readable search log"):
        export_feedback([tmp_path / "notes.sqlite"], tmp_path / "out", PARAMS)


def test_the_command_exports_a_glob_and_without_a_log_names_the_default(
    log_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from modaclip.cli import main

    monkeypatch.chdir(tmp_path)  # no params.yaml here: feedback.export's defaults
    main(["feedback", "export", "--log", "*.sqlite", "--out", "exported"])
    assert json.loads(capsys.readouterr().out)["text_searches"] == 8
    assert (tmp_path / "exported" / PAIRS).is_file()
    with pytest.raises(SystemExit) as stopped:
        main(["feedback", "export"])
    assert stopped.value.code == 2
    assert "logs/search-log.sqlite: no search log there" in capsys.readouterr().err
