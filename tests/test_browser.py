"""The app in a real browser: ``streamlit run`` on 127.0.0.1 and Debian's Chromium driven by Playwright.

Every page is opened, its real content awaited (a Plotly chart, the translation boxes, the table), its key
element checked and a screenshot saved to ``test-artifacts/``. The decoupling switch on Translate is clicked and
the output box must change. The server is always stopped, even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 120_000
PAGES = {  # url path -> the element that proves the page drew its real content
    "": ".js-plotly-plot",
    "embeddings": ".js-plotly-plot",
    "subspace": ".js-plotly-plot",
    "translate": ".dde-sentence",
    "error_analysis": ".dde-output",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(root: Path, *, address: str | None = "127.0.0.1", **env_extra: str):
    """``streamlit run app.py`` on a free port with ``DDE_CACHE_ROOT=root``; yields its URL. ``address=None``
    leaves the address to the committed ``.streamlit/config.toml``."""
    port = _free_port()
    log = root / "streamlit.log"
    env = {**os.environ, "DDE_CACHE_ROOT": str(root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           **env_extra}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
           str(port), "--browser.gatherUsageStats", "false", *(["--server.address", address] if address else [])]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url if address is not None else (url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tiny_experiment, tmp_path_factory):
    """URL of a server showing a private copy of the tiny experiment."""
    root = tmp_path_factory.mktemp("browser-cache")
    shutil.copytree(tiny_experiment, root / "tiny")
    with streamlit_server(root) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium); .ci/run does")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 2200}, locale="en-GB")
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


def settle(pg, selector: str) -> None:
    """Wait for the page's real content and for the script run to finish."""
    pg.wait_for_selector(selector, state="visible", timeout=WAIT_MS)
    pg.wait_for_function(
        "() => document.querySelector('.stApp')?.getAttribute('data-test-script-state') === 'notRunning' "
        "&& !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=WAIT_MS)
    pg.wait_for_timeout(500)   # Plotly finishes its draw after the script run ends


def shoot(pg, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("path", list(PAGES), ids=[p or "home" for p in PAGES])
def test_page_shows_its_content(server, page, path):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server}/{path}")
    settle(page, PAGES[path])
    assert not page.locator("[data-testid='stException']").count(), page.locator(
        "[data-testid='stException']").first.inner_text()
    if path == "":
        assert page.get_by_text("Arabic is diglossic").count()
        assert page.locator(".js-plotly-plot .geo").count() == 1          # the map
        assert page.locator(".dde-verdict").count() == 2    # in words: the plain summary, the full verdict folded below
        assert page.locator("table.dde-table td[dir='auto']").count() > 20  # the headline, no inner scroll box
        assert page.locator(".modebar-btn.dde-svg").count() >= 1          # SVG export beside the PNG one
        for fmt, button in (("svg", ".modebar-btn.dde-svg"), ("png", ".modebar-btn[data-title$='PNG']")):
            with page.expect_download(timeout=WAIT_MS) as download:
                page.locator(button).first.dispatch_event("click")
            # named for what it holds: experiment, figure, arm, direction kind (ui.exports.file_name)
            assert download.value.suggested_filename == f"tiny_delta-map_decoupled_MSA-dialect.{fmt}"
    elif path in ("embeddings", "subspace"):
        assert page.locator(".js-plotly-plot").count() >= (2 if path == "embeddings" else 5)
        assert page.locator(".js-plotly-plot .modebar").count() or page.locator(".modebar-container").count()
    elif path == "translate":
        assert page.locator(".dde-sentence").count() == 4
        assert page.locator(".dde-sentence[dir='rtl']").count() == 4
    else:
        assert page.get_by_text("CSV · filtered view").count() and page.get_by_text("JSONL · everything").count()
        assert page.locator(".dde-output").count() == 7     # every model's output: base + 3 arms x 2 seeds
    assert not errors, errors
    shoot(page, path or "home")


@pytest.fixture(scope="module")
def sweep_server(tiny_experiment, tmp_path_factory):
    """URL of a server showing the tiny experiment made into a λ sweep (four arms, the widest Home table)."""
    from sweep_experiment import make_sweep

    root = tmp_path_factory.mktemp("browser-sweep")
    make_sweep(tiny_experiment, root / "sweep")
    with streamlit_server(root) as url:
        yield url


@pytest.mark.parametrize("which", ["server", "sweep_server"])
def test_home_results_fit_1280x720_without_sideways_scrolling(request, browser, which):
    """At 1280×720 (a laptop) the results tables on Home fit the page: no table is wider than its box and the page
    itself does not scroll sideways; the headline holds every arm, its Δ cells and the noise floor."""
    url = request.getfixturevalue(which)
    context = browser.new_context(viewport={"width": 1280, "height": 720}, locale="en-GB")
    pg = context.new_page()
    try:
        pg.goto(url)
        settle(pg, ".js-plotly-plot")
        tables = pg.locator("table.dde-table")
        assert tables.count() >= 2 + (which == "sweep_server")   # headline, outputs (and the dose-response)
        headline = tables.first.inner_text()
        assert "noise floor" in headline and "Δ decoupled" in headline
        if which == "sweep_server":
            assert "decoupled-lam0.1" in headline
        widths = pg.evaluate("""() => [...document.querySelectorAll('.dde-table-wrap')].map(
            w => [w.scrollWidth, w.clientWidth])""")
        assert widths and all(sw <= cw + 1 for sw, cw in widths), widths
        page_w = pg.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert page_w[0] <= page_w[1] + 1, page_w
        tables.first.scroll_into_view_if_needed()
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"home-1280x720-{which}.png"))
    finally:
        context.close()


def test_arabic_inputs_run_right_to_left(server, page):
    """Arabic typed into a text input or a text area is laid out right to left (dir="auto")."""
    page.goto(f"{server}/error_analysis")
    settle(page, ".dde-output")
    search = page.locator("[data-testid='stTextInput'] input").first
    assert search.get_attribute("dir") == "auto"
    search.fill("المركز")
    assert search.evaluate("e => e.matches(':dir(rtl)')")
    search.press("Enter")
    page.wait_for_function("() => decodeURIComponent(location.search).includes('ea_search=المركز')",
                           timeout=WAIT_MS)                    # the filter is in the address: a reload keeps it
    settle(page, "[data-testid='stMarkdown']:visible")
    page.reload()
    settle(page, "[data-testid='stTextInput'] input")
    assert page.locator("[data-testid='stTextInput'] input").first.input_value() == "المركز"
    page.goto(f"{server}/translate")
    settle(page, ".dde-sentence")
    page.get_by_text("Type my own").click()
    area = page.locator("textarea").first
    area.wait_for(state="visible", timeout=WAIT_MS)
    assert area.get_attribute("dir") == "auto"
    area.fill("كيف حالك اليوم؟")
    assert area.evaluate("e => e.matches(':dir(rtl)')")
    assert area.evaluate("e => getComputedStyle(e).unicodeBidi") == "plaintext"
    shoot(page, "translate-arabic-input")


@pytest.fixture(scope="module")
def known_outputs(tiny_experiment, tmp_path_factory):
    """A copy of the tiny experiment whose saved outputs are distinct, known Arabic sentences (the tiny model's own
    are empty), in the evaluation's own file format: (server URL, {model: output of the first test sentence})."""
    from explorer.experiment.layout import Experiment
    from explorer.experiment.view import load_experiment
    from explorer.files import write_jsonl

    root = tmp_path_factory.mktemp("known-outputs")
    shutil.copytree(tiny_experiment, root / "tiny")
    exp = Experiment(root / "tiny")
    words = {"base": "قال المركز", "baseline": "المركز بيقول", "decoupled": "المركز قال انه", "random": "مش عارف"}
    first = {}
    for model in load_experiment(exp.root).models:      # "base", then every arm's seeds ("decoupled.s1")
        arm, _, seed = model.partition(".s")
        path = exp.hyps_path(model)
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        for i, r in enumerate(rows):
            r["hyp"] = f"{words[arm]} {seed or 0}{i} — {r['ref'][:40]}"
        write_jsonl(path, rows)                         # with its check record, as the evaluation writes it
        first[model] = rows[0]
    with streamlit_server(root) as url:
        yield url, first


def test_one_sentence_shows_every_output_in_full(known_outputs, page):
    from urllib.parse import urlencode

    from explorer.data.varieties import direction_label

    url, first = known_outputs
    row = next(iter(first.values()))
    chosen = f"{direction_label(row['src'], row['tgt'])} · {row['sent_id']}"     # as the page names it
    page.goto(f"{url}/error_analysis?{urlencode({'ea_item': chosen})}")          # a shared link to one sentence
    settle(page, ".dde-output")
    outputs = page.locator(".dde-output")
    assert outputs.count() == len(first)
    texts = [outputs.nth(i).inner_text().strip() for i in range(outputs.count())]
    assert texts == [r["hyp"] for r in first.values()]            # every model, in full, its own text only
    assert all(outputs.nth(i).get_attribute("dir") == "rtl" for i in range(outputs.count()))
    page.get_by_text("Word diff against the reference").click()
    settle(page, "mark.dde-extra, mark.dde-missing")
    texts_diffed = [outputs.nth(i).inner_text().strip() for i in range(outputs.count())]
    assert texts_diffed == texts                                   # the diff adds no character to an output
    shoot(page, "error-analysis-one-sentence")


def test_sidebar_navigation_keeps_the_experiment(server, page):
    page.goto(server)
    settle(page, ".js-plotly-plot")
    page.locator("[data-testid='stSidebarNav'] a", has_text="Subspace").click()
    settle(page, ".js-plotly-plot")
    assert page.get_by_role("heading", name="The MSA subspace over training").count()
    picker = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first
    assert "Experiment" in picker.inner_text()
    shown = picker.locator("input").first.input_value() or picker.inner_text()
    assert "tiny" in shown, shown


def test_decoupling_switch_changes_the_output(server, page):
    page.goto(f"{server}/translate")
    settle(page, ".dde-sentence")
    left = page.locator("[data-testid='stColumn']").filter(has=page.locator("h4")).first
    before = left.inner_text()
    page.locator("[data-testid='stSidebar']").get_by_text("Inference-time decoupling").click()
    page.wait_for_function(
        "(b) => { const c = Array.from(document.querySelectorAll('[data-testid=\"stColumn\"]'))"
        ".find(e => e.querySelector('h4')); return c && c.innerText !== b && c.innerText.includes('α=1'); }",
        arg=before, timeout=WAIT_MS)
    settle(page, ".dde-sentence")
    after = left.inner_text()
    assert after != before and "decoupling α=1 at layer." in after
    shoot(page, "translate-decoupled")


def test_run_button_one_run_across_tabs_and_refresh(browser, tmp_path):
    """Run from an empty cache (the tiny preset, to keep it short): live progress shows, a second tab and a
    refresh follow the same process, and no second Run button appears while it runs."""
    from explorer.experiment.layout import Experiment

    folder = tmp_path / "tiny"
    with streamlit_server(tmp_path, DDE_RUN_PRESET="tiny") as url:
        ctx = browser.new_context(viewport={"width": 1440, "height": 1600})
        pid = None
        try:
            first = ctx.new_page()
            first.goto(url)
            settle(first, "button:has-text('Run the default experiment')")
            first.get_by_role("button", name="Run the default experiment").click()
            first.wait_for_selector("text=/in process \\d+/", timeout=WAIT_MS)
            pid = Experiment(folder).running_pid()
            assert pid is not None
            second = ctx.new_page()                      # a second tab
            second.goto(url)
            second.wait_for_selector(f"text=process {pid}", timeout=WAIT_MS)
            assert not second.get_by_role("button", name="Run the default experiment").count()
            first.reload()                               # a refresh
            first.wait_for_selector(f"text=process {pid}", timeout=WAIT_MS)
            first.wait_for_selector("[data-testid='stProgress']", timeout=WAIT_MS)
            shoot(first, "home-running")
            assert Experiment(folder).running_pid() == pid
        finally:
            ctx.close()
            if pid is not None:
                os.killpg(pid, signal.SIGTERM)          # the run this test started (its own process group)
                deadline = time.time() + 30
                while Experiment(folder).running_pid() is not None and time.time() < deadline:
                    time.sleep(0.2)


# ---------------------------------------------------------------- a fresh server per case (issue 10)


@pytest.fixture(scope="module")
def fresh_root(tiny_experiment, tmp_path_factory):
    root = tmp_path_factory.mktemp("fresh-cache")
    shutil.copytree(tiny_experiment, root / "tiny")
    return root


@pytest.mark.parametrize("path", list(PAGES), ids=[p or "home" for p in PAGES])
def test_each_page_url_works_as_the_first_thing_opened(fresh_root, page, path):
    """On a new server, open this page's URL before any other: Streamlit's pages/-folder mode used to run the
    page without app.py (no experiment picker: "no experiment"); now the page reroutes through app.py."""
    with streamlit_server(fresh_root) as url:
        page.goto(f"{url}/{path}")
        lost = page.get_by_text("There is no experiment to look at yet")
        page.locator(PAGES[path]).first.or_(lost).wait_for(timeout=WAIT_MS)     # whichever comes first
        assert not lost.count(), f"/{path} opened first shows 'no experiment'"
        settle(page, PAGES[path])
        assert not page.locator("[data-testid='stException']").count()
        picker = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first
        assert "Experiment" in picker.inner_text()
        assert page.locator("[data-testid='stSidebarNav'] a", has_text="Error analysis").count() == 1
        assert not page.locator("[data-testid='stSidebarNav'] a", has_text="app").count()  # not the v1 page list
        assert page.url.rstrip("/") == f"{url}/{path}".rstrip("/")
        shoot(page, f"first-{path or 'home'}")


def test_server_listens_on_loopback_only_by_default(tmp_path):
    """`streamlit run app.py` with no address option: the committed .streamlit/config.toml keeps it private."""
    import psutil

    with streamlit_server(tmp_path, address=None) as (url, pid):
        listening = {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN}
        assert listening == {"127.0.0.1"}, listening
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
            assert r.read().strip() == b"ok"
