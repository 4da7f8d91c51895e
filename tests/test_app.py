"""The Gradio app: callbacks on the real default model, and the whole page in headless Chromium."""
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def test_examples_come_from_assets():
    from hyco2.app import callbacks

    rows = callbacks.examples()
    assert len(rows) >= 3 and all(len(r[0]) > 200 and r[1].endswith("?") for r in rows)


def test_run_streams_both_answers_and_counts():
    from hyco2.app import callbacks

    context, question, _ = callbacks.examples()[0]
    outputs = list(callbacks.run(context, question, "rate", 0.2, 32, "hyco2", "smollm2-135m-instruct", max_new_tokens=16))
    assert len(outputs) >= 3  # streamed: several partial updates
    full, full_info, small, small_info, highlighted, counts, chart = outputs[-1]
    assert full.strip() and small.strip()
    assert re.search(r"\d+ context tokens", full_info) and "16 soft" in small_info
    kept = [t for t, score in highlighted if score is not None and score > 0]  # None: a line break
    assert "".join(t for t, _ in highlighted) == context  # whole words that add up to the text
    assert all(t.strip() and " " not in t.strip() for t in kept)  # whole words, not sub-word chips
    n_kept = int(re.search(r"\((\d+) kept", small_info).group(1))
    assert 0 < len(kept) <= n_kept == round(0.2 * int(re.search(r"(\d+) context tokens", full_info).group(1)))
    assert "compression ratio" in counts and list(chart["count"])[:3] == ["context", "kept", "soft"]


def test_the_full_column_can_be_the_same_reader_reading_every_token():
    """The full-context column answers with the raw backbone by default, or, on request, with HyCo2's own
    reader (soft tokens + every token): the reference a compression is measured against. A peer has no
    soft tokens, so it falls back to the raw backbone and says so."""
    from hyco2.app import callbacks
    from hyco2.reader import HyCo2Reader

    context, question, _ = callbacks.examples()[0]
    args = (context, question, "rate", 0.2, 32)
    *_, same = callbacks.run(*args, "hyco2", "smollm2-135m-instruct", full_reader="same reader", max_new_tokens=8)
    comp = callbacks.get_compressor("smollm2-135m-instruct", None)
    keep_all = comp.compress(context, question, rate=1.0)
    assert keep_all.kept_tokens == keep_all.context_tokens and keep_all.soft_tokens == 16
    expected = HyCo2Reader(comp).answer(context, question, "hybrid", compression=keep_all, max_new_tokens=8).text
    assert same[0] == expected and "HyCo2's reader: 16 soft + every token" in same[1]
    *_, raw = callbacks.run(*args, "hyco2", "smollm2-135m-instruct", max_new_tokens=8)
    assert "raw backbone" in raw[1] and raw[0] == HyCo2Reader(comp).answer(context, question, "full",
                                                                           max_new_tokens=8).text
    *_, peer = callbacks.run(*args, "truncate", "smollm2-135m-instruct", full_reader="same reader", max_new_tokens=8)
    assert "raw backbone (a peer has no soft tokens)" in peer[1] and peer[0] == raw[0]


def _shipped():
    from hyco2.app import callbacks

    return callbacks.installed_checkpoints()


def test_every_shipped_adapter_is_offered():
    adapters = {label.split(" · ")[1] for label, _ in _shipped()}
    assert adapters == {"hybrid", "comprexit", "comi"}


@pytest.mark.parametrize("label, folder", _shipped())
def test_run_answers_with_each_shipped_checkpoint(label, folder):
    """The checkpoint dropdown: every shipped adapter compresses and answers through the same callback."""
    from hyco2.app import callbacks

    context, question, _ = callbacks.examples()[0]
    *_, last = callbacks.run(context, question, "rate", 0.15, 32, "hyco2", "smollm2-135m-instruct", 0.5, None,
                             folder, max_new_tokens=8)
    full, _, small, small_info, _, counts, _ = last
    assert full.strip() and small.strip() and "16 soft" in small_info and "compression ratio" in counts
    comp = callbacks.get_compressor("smollm2-135m-instruct", folder)
    assert comp.model.config.adapter == label.split(" · ")[1] and comp.checkpoint == folder
    assert comp.backbone is callbacks.get_compressor("smollm2-135m-instruct", None).backbone  # weights shared


def test_run_takes_a_text_longer_than_the_window():
    from hyco2.app import callbacks

    context, question, _ = callbacks.examples()[0]
    long_text = "\n\n".join([context] * 42)  # ~8.4k tokens: just over the default 7,936-token window
    outputs = list(callbacks.run(long_text, question, "rate", 0.05, 32, "hyco2", "smollm2-135m-instruct", max_new_tokens=8))
    full, full_info, small, small_info, highlighted, counts, chart = outputs[-1]
    assert "does not fit" in full and small.strip()
    assert any(score is None and "words" in t for t, score in highlighted) or len(highlighted) <= 3000
    assert any(score is not None and score > 0 for _, score in highlighted)


def test_uploaded_files_are_a_document_list_with_counts_per_file(tmp_path):
    from hyco2.app import callbacks

    texts = [text for text, _, _ in callbacks.examples()[:3]]
    paths = []
    for i, text in enumerate(texts):
        paths.append(tmp_path / f"doc{i}.txt")
        paths[-1].write_text(text, encoding="utf-8")
    context, documents = callbacks.load_files([str(p) for p in paths])
    assert [name for name, _ in documents] == ["doc0.txt", "doc1.txt", "doc2.txt"] and all(t in context for t in texts)
    question = callbacks.examples()[0][1]
    out = list(callbacks.run(context, question, "budget", 0.2, 30, "hyco2", "smollm2-135m-instruct",
                             documents=documents, max_new_tokens=8))[-1]
    counts = out[5]
    rows = re.findall(r"\| (doc\d\.txt) \| (\d+) \| (\d+) \| (\d+) \|", counts)
    assert [r[0] for r in rows] == ["doc0.txt", "doc1.txt", "doc2.txt"]
    assert sum(int(r[2]) for r in rows) == 30 and all(int(r[3]) == 16 for r in rows)
    # once the user edits the joined text, it is one context again (no per-file table)
    edited = list(callbacks.run(context + " More.", question, "rate", 0.2, 30, "hyco2", "smollm2-135m-instruct",
                                documents=documents, max_new_tokens=4))[-1]
    assert "doc0.txt" not in edited[5]
    # threshold mode from the page's control
    thr = list(callbacks.run(texts[0], question, "threshold", 0.2, 30, "hyco2", "smollm2-135m-instruct",
                             threshold=0.3, max_new_tokens=4))[-1]
    assert "kept verbatim" in thr[5]


@pytest.mark.parametrize("bad, message", [("", "empty"), ("abc\x00def", "NUL")])
def test_bad_input_is_a_message_not_a_crash(bad, message):
    import gradio as gr

    from hyco2.app import callbacks

    with pytest.raises(gr.Error, match=message):
        list(callbacks.run(bad, "What?", "rate", 0.2, 32, "hyco2", "smollm2-135m-instruct"))
    with pytest.raises(gr.Error, match="question is empty"):
        list(callbacks.run("Some text here.", "  ", "rate", 0.2, 32, "hyco2", "smollm2-135m-instruct"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _app_in_chromium(tmp_path, *flags):
    """app.py started on a free port with ``flags``, and headless Chromium: (url, browser); both stopped after."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    log = open(tmp_path / "app.log", "w")
    app = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *flags], cwd=ROOT, stdout=log,
                           stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                assert app.poll() is None, (tmp_path / "app.log").read_text()
                time.sleep(0.5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            try:
                yield url, browser
            finally:
                browser.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
        log.close()


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("chromium") and not shutil.which("/usr/bin/chromium"),
                    reason="Debian's chromium is not installed (apt-get install chromium)")
def test_browser_example_to_both_answers(tmp_path):
    with _app_in_chromium(tmp_path) as (url, browser):
        page = _page_with_the_first_example(browser, url, height=1500)
        page.click("#go")
        page.wait_for_function(
            "document.querySelector('#compressed-info') && "
            "document.querySelector('#compressed-info').innerText.includes('compress ')", timeout=180_000)
        full = page.locator("#full-answer textarea").input_value()
        small = page.locator("#compressed-answer textarea").input_value()
        assert full.strip() and small.strip()
        assert "Karsten Point" in page.locator("#highlighted").inner_text().replace("\n", "")
        counts = page.locator("#counts").inner_text()
        ratio = float(re.search(r"compression ratio\s+([\d.]+)x", counts).group(1))
        context_tokens = int(re.search(r"context \(backbone\)\s+(\d+)", counts).group(1))
        assert 1.5 < ratio < 20 and 100 < context_tokens < 400
        page.wait_for_timeout(500)
        # the README's picture is refreshed only on request: tests leave the work tree clean
        shot = ROOT / "docs" / "screenshot.png" if os.environ.get("HYCO2_UPDATE_SCREENSHOT") else tmp_path / "app.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        _three_sessions_at_once(browser, url, tmp_path)


def _page_with_the_first_example(browser, url, height: int = 900):
    """A visitor's page with the lighthouse example clicked into the context and question boxes."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    page.goto(url)
    page.get_by_text("Who built the lighthouse at Karsten Point?").first.click()
    page.wait_for_function("document.querySelector('#context textarea').value.includes('Karsten')")
    return page


def _three_sessions_at_once(browser, url, tmp_path):
    """Three users submit together, one of them a text longer than the backbone's window, another asking
    for HyCo2's own reader in the full-context column: the queue serves them one after another and every
    one gets both answers, each full column labelled with its reader."""
    lighthouse = (ROOT / "assets" / "examples" / "lighthouse.txt").read_text()
    long_text = "\n\n".join([lighthouse] * 42)  # ~8.4k tokens: just over the window
    pages = []
    for n in range(3):
        page = _page_with_the_first_example(browser, url)
        if n == 1:
            page.locator("#context textarea").fill(long_text)
        if n == 2:
            page.locator("#full-reader").get_by_text("same reader").click()
        pages.append(page)
    for page in pages:
        page.click("#go")
    for n, page in enumerate(pages):
        page.wait_for_function(
            "document.querySelector('#compressed-info') && "
            "document.querySelector('#compressed-info').innerText.includes('compress ')", timeout=600_000)
        assert page.locator("#compressed-answer textarea").input_value().strip(), f"session {n}"
        full = page.locator("#full-answer textarea").input_value()
        assert ("does not fit" in full) == (n == 1), f"session {n}: {full!r}"
        info = page.locator("#full-info").inner_text()
        assert ("HyCo2's reader: 16 soft + every token" in info) == (n == 2) and ("raw backbone" in info) == (n != 2), \
            f"session {n}: {info!r}"
    pages[1].screenshot(path=str(tmp_path / "long.png"), full_page=True)
    assert "words" in pages[1].locator("#highlighted").inner_text()  # long text: folded view


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("chromium") and not shutil.which("/usr/bin/chromium"),
                    reason="Debian's chromium is not installed (apt-get install chromium)")
def test_browser_size_cap_busy_message_and_the_active_control_only(tmp_path):
    """A public Space's limits, in the page: a context over the cap is a message, not a minutes-long
    request; with the queue full a visitor reads that the app is busy; only the chosen control shows."""
    with _app_in_chromium(tmp_path, "--max-chars", "2000", "--queue-size", "1") as (url, browser):
        page = browser.new_page(viewport={"width": 1280, "height": 1200})
        page.goto(url)
        page.wait_for_selector("#go")
        page.locator("#rate").wait_for(state="visible", timeout=30_000)
        assert not page.locator("#budget").is_visible() and not page.locator("#threshold").is_visible()
        page.locator("#control").get_by_text("budget").click()
        page.locator("#budget").wait_for(state="visible", timeout=10_000)
        assert not page.locator("#rate").is_visible() and not page.locator("#threshold").is_visible()
        page.locator("#control").get_by_text("rate").click()
        page.locator("#rate").wait_for(state="visible", timeout=10_000)
        page.locator("#context textarea").fill("word " * 700)  # 3,500 characters
        page.locator("#question textarea").fill("What?")
        page.click("#go")
        page.get_by_text("this app reads at most 2,000").first.wait_for(timeout=30_000)
        pages = [_page_with_the_first_example(browser, url) for _ in range(4)]
        for p in pages:
            p.click("#go")
        deadline = time.time() + 120
        while time.time() < deadline and not any("currently busy" in p.inner_text("body") for p in pages):
            time.sleep(0.5)
        assert any("currently busy" in p.inner_text("body") for p in pages)
