"""The search page in a real headless Chromium against a real server on 127.0.0.1.

Chromium is Debian's package (`apt-get install -y chromium`, done by .ci/run); Playwright drives it
through `executable_path`, so no browser is downloaded. Without it these tests skip, saying why, except
in CI (`CI=true`), where a missing browser fails them: a green CI run has run the page.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from modaclip.core.config import ServeParams
from modaclip.feedback.log_schema import read_log
from modaclip.feedback.search_log import LogConfig, SearchLog
from modaclip.registry.model_choice import SearchSource
from modaclip.search.engine import CatalogSearch
from modaclip.serve.app import ServiceSettings, create_app
from modaclip.serve.catalog_images import CatalogImages

CHROMIUM = Path(os.environ.get("MODACLIP_CHROMIUM", "/usr/bin/chromium"))  # the variable: for another install
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_SIZE = 24  # what app.js asks for


def require_chromium(path: Path) -> None:
    """Skip when there is no Chromium at `path`, saying why; fail instead in CI (CI=true)."""
    if path.exists():
        return
    missing = f"no Chromium at {path}: run scripts/install-chromium (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {missing}")
    pytest.skip(missing)


@pytest.fixture(scope="session", autouse=True)
def chromium_installed() -> None:
    """Checked before the server or the browser starts (a session fixture comes first)."""
    require_chromium(CHROMIUM)


@pytest.fixture(scope="module")
def search_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchLog]:
    """The log the page's server keeps, as `modaclip serve` does by default."""
    opened = SearchLog(LogConfig(tmp_path_factory.mktemp("log") / "search-log.sqlite", 0))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def base_url(
    served_engine: CatalogSearch, served_images: CatalogImages, served_paths: dict[str, Path], search_log: SearchLog
) -> Iterator[str]:
    """uvicorn serving the app on a free port of 127.0.0.1, in a thread of this process."""
    paths = [served_paths[role] for role in ("model", "embeddings", "catalog")]
    since = datetime(2026, 11, 30, 9, 15, tzinfo=timezone.utc)
    source = SearchSource(
        *paths, kind="production", description="production v2.0.0 (test model)", version="v2.0.0", since=since
    )
    settings = ServiceSettings(source=source, params=ServeParams(), search_log=search_log)
    server = uvicorn.Server(uvicorn.Config(create_app(served_engine, served_images, settings), log_level="warning"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("uvicorn did not start")
        threading.Event().wait(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def console_errors() -> list[str]:
    """Script errors and failed loads the page reports; a test that causes one on purpose removes it."""
    return []


@pytest.fixture
def page(browser: Browser, base_url: str, console_errors: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = console_errors
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(base_url)
    yield page
    context.close()
    assert errors == [], errors


def card_ids(page: Page) -> list[int]:
    return [int(i) for i in page.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.id)")]


def wait_for_images(page: Page) -> None:
    """The page's request is answered (no `loading` class) and every card's image has loaded and
    decoded (naturalWidth > 0); lazy images are scrolled into view first so they load at all."""
    page.wait_for_function("!document.body.classList.contains('loading')")
    page.wait_for_selector(".card img")
    page.evaluate("document.querySelectorAll('.card img').forEach(img => img.scrollIntoView())")
    page.wait_for_function("[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)")


def search(page: Page, text: str) -> None:
    page.fill("#q", text)
    page.press("#q", "Enter")
    page.wait_for_function(f"document.querySelector('#heading').textContent.includes({text!r})")
    wait_for_images(page)


def test_search_filter_similar_and_more(page: Page, served_engine: CatalogSearch, tmp_path: Path) -> None:
    page.wait_for_selector("#filters select[name=gender] option[value=Women]", state="attached")
    footer = page.text_content("#model")
    assert footer.startswith("production v2.0.0 (test model) since ") and "2026" in footer, footer
    search(page, "red dress")
    assert len(card_ids(page)) == PAGE_SIZE
    assert page.eval_on_selector_all(".card img", "imgs => imgs.every(i => i.loading === 'lazy')")

    page.select_option("#filters select[name=gender]", "Women")
    page.wait_for_function("[...document.querySelectorAll('.card .meta')].every(m => m.textContent.includes('Women'))")
    wait_for_images(page)
    women = card_ids(page)
    assert women and all(served_engine.info.loc[served_engine.row_of[i], "gender"] == "Women" for i in women)

    page.click("#more")
    page.wait_for_function(f"document.querySelectorAll('.card').length > {len(women)}")
    assert card_ids(page)[: len(women)] == women

    clicked = women[1]
    page.click(f".card[data-id='{clicked}']")
    name = served_engine.info.loc[served_engine.row_of[clicked], "productDisplayName"]
    page.wait_for_function(
        "document.querySelector('#heading').textContent.includes('Similar to') && "
        f"document.querySelector('#heading').textContent.includes({str(clicked)!r})"
    )
    wait_for_images(page)
    similar = card_ids(page)
    assert name in page.text_content("#heading") and similar and clicked not in similar
    assert all(served_engine.info.loc[served_engine.row_of[i], "gender"] == "Women" for i in similar)
    page.screenshot(path=str(tmp_path / "similar.png"), full_page=True)
    assert (tmp_path / "similar.png").stat().st_size > 10_000


def test_a_product_added_and_one_opened_reach_the_search_log(page: Page, search_log: SearchLog) -> None:
    search(page, "blue shirt")
    shown = card_ids(page)
    page.click(f".card[data-id='{shown[3]}'] .add")
    page.wait_for_function(f"document.querySelector(\".card[data-id='{shown[3]}'] .add\").disabled")
    assert "Similar to" not in page.text_content("#heading"), "adding does not open the product"
    page.click(f".card[data-id='{shown[0]}']")
    page.wait_for_function("document.querySelector('#heading').textContent.includes('Similar to')")
    wait_for_images(page)
    deadline = time.monotonic() + 20
    while True:
        tables = read_log([search_log.config.path])
        searched = tables.searches[tables.searches["query"] == "blue shirt"]
        if len(searched) and len(tables.events[tables.events["search_id"].isin(searched["search_id"])]) == 2:
            break
        assert time.monotonic() < deadline, f"the events never reached the log: {search_log.stats()}"
        time.sleep(0.05)
    row = searched.iloc[0]
    assert row["shown"] == [str(i) for i in shown] and len(row["session"]) == 24
    events = tables.events[tables.events["search_id"] == row["search_id"]]
    assert events[["product_id", "event"]].values.tolist() == [[str(shown[3]), "add"], [str(shown[0]), "open"]]
    similar = tables.searches[tables.searches["kind"] == "similar_product"].iloc[-1]
    assert (similar["query"], similar["session"]) == (str(shown[0]), row["session"]), "one tab, one session"


def test_dropping_a_product_photo_shows_products_like_it(
    page: Page, served_engine: CatalogSearch, served_images: CatalogImages
) -> None:
    product_id = int(served_engine.ids[7])
    photo = served_images.get(product_id)
    assert photo is not None
    transfer = page.evaluate_handle(
        """b64 => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], 'photo.jpg', {type: 'image/jpeg'}));
            return transfer;
        }""",
        base64.b64encode(photo).decode(),
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    page.wait_for_function("document.querySelector('#heading').textContent.includes('photo.jpg')")
    wait_for_images(page)
    assert card_ids(page) == [
        hit.id for hit in served_engine.similar(product_id, k=PAGE_SIZE)
    ]  # the product's own photo: like its id, itself left out


def test_choosing_a_file_and_an_error_show_in_the_page(
    page: Page, served_engine: CatalogSearch, served_images: CatalogImages, console_errors: list[str]
) -> None:
    product_id = int(served_engine.ids[11])
    page.set_input_files(
        "#image-file",
        files=[{"name": "pick.jpg", "mimeType": "image/jpeg", "buffer": served_images.get(product_id) or b""}],
    )
    page.wait_for_function("document.querySelector('#heading').textContent.includes('pick.jpg')")
    wait_for_images(page)
    assert card_ids(page) == [hit.id for hit in served_engine.similar(product_id, k=PAGE_SIZE)]
    page.set_input_files(
        "#image-file", files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not an image"}]
    )
    page.wait_for_selector("#heading .error")
    assert "not a readable image" in page.text_content("#heading") and card_ids(page) == []
    assert console_errors == [
        "Failed to load resource: the server responded with a status of 415 (Unsupported Media Type)"
    ]
    console_errors.clear()


def test_phone_width_shows_two_columns_and_folds_the_filters(browser: Browser, base_url: str, tmp_path: Path) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.goto(base_url)
    search(page, "blue jeans")
    columns = page.eval_on_selector_all(
        ".card", "cards => new Set(cards.map(c => c.getBoundingClientRect().left)).size"
    )
    assert columns == 2
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(tmp_path / "phone.png"))
    assert not page.is_visible("#filters select[name=gender]")  # folded away so results come first
    page.click("#filter-box summary")
    page.select_option("#filters select[name=gender]", "Men")
    page.wait_for_function("[...document.querySelectorAll('.card .meta')].every(m => m.textContent.includes('Men'))")
    context.close()
