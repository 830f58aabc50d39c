"""Benchmarks of issue 4 (the app) with a warm cache, timed in a real headless browser.

    python bench/bench_app.py                      # cache/default if complete, else the tiny preset in bench/out/
    python bench/bench_app.py --exp cache/default --rounds 7

Measures, against the issue's targets (2-core machine, warm caches):
- switching page through the sidebar: click to the page's content drawn and the script run finished
  (median over rounds of the five pages; target < 1 s);
- a full page load of each page (a new browser session opening the URL; reported, no target);
- changing the checkpoint on Embeddings (two UMAP panels redrawn; median; target < 1 s);
- the one-sentence view on Error analysis: picking another sentence until every model's output is drawn
  (median; target <= 1 s);
- one translation of one sentence by two arms (baseline and decoupled, in-process, models loaded; median over
  test sentences; target < 1 s), and the same seen from the browser (pick an uncached test sentence on
  Translate until both outputs are drawn);
- the app server's resident memory (psutil, with its children) after every page has been visited
  (target < 2 GB with the default experiment loaded).
Writes bench/out/app.json and prints a markdown table. The server runs on 127.0.0.1 and is always stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = [("Home", "", ".js-plotly-plot"), ("Embeddings", "embeddings", ".js-plotly-plot"),
         ("Subspace", "subspace", ".js-plotly-plot"), ("Translate", "translate", ".dde-sentence"),
         ("Error analysis", "error_analysis", ".dde-output")]
IDLE = ("() => document.querySelector('.stApp')?.getAttribute('data-test-script-state') === 'notRunning' "
        "&& !document.querySelector('[data-testid=\"stSkeleton\"]')")


def pick_experiment(arg: str | None) -> Path:
    from explorer.experiment.layout import CACHE_ROOT
    from explorer.experiment.view import load_experiment

    if arg:
        return Path(arg).resolve()
    default = CACHE_ROOT / "default"
    if (default / "manifest.json").exists() and load_experiment(default).complete:
        return default
    tiny = OUT / "tiny"
    if not (tiny / "manifest.json").exists() or not load_experiment(tiny).complete:
        from explorer.config import preset_config
        from explorer.experiment.run import run_experiment

        print(f"no complete cache/default: building the tiny preset into {tiny}", file=sys.stderr)
        run_experiment(preset_config("tiny"), tiny, bar=False)
    return tiny


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "DDE_CACHE_ROOT": str(root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), "--server.address", "127.0.0.1",
                                 "--browser.gatherUsageStats", "false", *extra], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"streamlit did not start:\n{log.read_text()[-2000:]}")


def rss_mb(pid: int) -> float:
    import psutil

    p = psutil.Process(pid)
    return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / 2**20


def settle(pg, selector: str) -> None:
    pg.wait_for_selector(selector, state="visible", timeout=300_000)
    pg.wait_for_function(IDLE, timeout=300_000)


def wait_rerun(pg, action, selector: str) -> float:
    """Seconds from ``action()`` until the app has rerun (running seen, then idle) with ``selector`` drawn."""
    # the whole document is watched: a page switch may redraw the .stApp element itself
    # and a short run can be over before the observer's callback runs: its old value still says "running"
    pg.evaluate("() => { window.__ran = false;"
                " window.__obs?.disconnect(); window.__obs = new MutationObserver((records) => {"
                " if (records.some(r => r.oldValue === 'running') || document.querySelector('.stApp')"
                "?.getAttribute('data-test-script-state') === 'running') window.__ran = true; });"
                " window.__obs.observe(document.documentElement, {attributes: true, subtree: true, childList: true,"
                " attributeOldValue: true, attributeFilter: ['data-test-script-state']}); }")
    # a warm run can begin and end within one browser frame, so "running" is not always drawn: the page's main
    # text changing (the new checkpoint in a figure title, the new sentence) counts as the rerun too
    pg.evaluate("() => { window.__before = document.querySelector('[data-testid=\"stMain\"]')?.textContent; }")
    t = time.perf_counter()
    action()
    pg.wait_for_function("() => window.__ran === true || document.querySelector('[data-testid=\"stMain\"]')"
                         "?.textContent !== window.__before", timeout=60_000)
    settle(pg, selector)
    return time.perf_counter() - t


TITLES = {"Home": "Dialect Decoupling Explorer", "Embeddings": "Embeddings", "Subspace": "The MSA subspace over training",
          "Translate": "Translate", "Error analysis": "Error analysis"}


def switch_page(pg, link, name: str, selector: str) -> float:
    """Seconds from a click on a sidebar link until that page's title and content are drawn and the run is over.

    (A warm page's run can start and end within one browser frame, so "running" is not always seen; the page's
    own title is.)"""
    t = time.perf_counter()
    link.click()
    pg.wait_for_function("t => [...document.querySelectorAll('h1')].some(h => h.innerText.trim() === t)",
                         arg=TITLES[name], timeout=60_000)
    settle(pg, selector)
    return time.perf_counter() - t


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def translation_in_process(exp: Path, n: int) -> dict:
    """One sentence by baseline and decoupled, models loaded (what the Translate page does on a cache miss).

    Uses the app's decoding thread count (``$DDE_TORCH_THREADS``, default 1; see ``explorer.ui.cache``)."""
    import torch

    from explorer.names import first_of
    from explorer.data.varieties import ENG, HR
    from explorer.evaluation.single import ModelHandle, translate_text
    from explorer.experiment.view import load_experiment

    torch.set_num_threads(max(1, int(os.environ.get("DDE_TORCH_THREADS", "1") or 1)))
    view = load_experiment(exp)
    cfg = view.config
    hyps = view.hypotheses()
    rows = hyps[(hyps["src"] == HR) & (hyps["tgt"] == view.dialects[0])].head(n + 1)
    handles = {}
    for arm in ("baseline", "decoupled"):
        model = first_of(view.models, arm)                   # its first seed ("decoupled.s0")
        step = view.checkpoints(model)[-1]
        m, tok = view.load_model(model, step)
        handles[arm] = ModelHandle(m, tok, model, step)
    decoupled = first_of(view.models, "decoupled")
    projection = view.projection(decoupled, view.checkpoints(decoupled)[-1], 0.0)   # off: the MSA-share readout
    codes = [*view.varieties, ENG]
    times = []
    for i, text in enumerate(rows["source"]):
        t = time.perf_counter()
        for h in handles.values():
            translate_text(h, codes, text, HR, view.dialects[0], max_len=cfg.max_len,
                           max_new_tokens=cfg.max_new_tokens, projection=projection)
        if i:  # the first call warms the kernels
            times.append(time.perf_counter() - t)
    return {"median_s": median(times), "n": len(times), "direction": f"{HR}-{view.dialects[0]}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", help="experiment folder (default: cache/default if complete, else a tiny run)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds of page switches and checkpoint changes")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is needed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from explorer.names import first_of
    from explorer.experiment.view import load_experiment

    exp = pick_experiment(args.exp)
    view = load_experiment(exp)
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict = {"experiment": str(exp), "preset": view.config.preset, "machine": platform.machine(),
                     "cpus": os.cpu_count(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        root = Path(tmp)
        (root / exp.name).symlink_to(exp, target_is_directory=True)
        port = free_port()
        server = start_server(root, port, root / "streamlit.log")
        url = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                ctx = browser.new_context(viewport={"width": 1440, "height": 1600})
                pg = ctx.new_page()
                # cold: the first visit of every page fills the caches (models, classifier, layouts)
                cold = {}
                for name, path, sel in PAGES:
                    t = time.perf_counter()
                    pg.goto(f"{url}/{path}")
                    settle(pg, sel)
                    cold[name] = time.perf_counter() - t
                steps = view.checkpoints(first_of(view.models, "decoupled"))
                pg.goto(f"{url}/embeddings")
                settle(pg, ".js-plotly-plot")
                control = pg.locator("[data-testid='stSidebar'] .st-key-ckpt")

                def choose(step: int) -> None:      # the one checkpoint control: a button per checkpoint
                    control.get_by_text(str(step), exact=True).click()

                for step in steps[-2::-1]:  # warm every checkpoint's layouts (the control starts at the last one)
                    wait_rerun(pg, lambda s=step: choose(s), ".js-plotly-plot")
                results["cold_first_visit_s"] = cold

                # page switches through the sidebar, warm (from Home: clicking the page one is on reruns nothing)
                pg.goto(url)
                settle(pg, PAGES[0][2])
                switches: dict[str, list[float]] = {name: [] for name, _, _ in PAGES}
                for _ in range(args.rounds):
                    for name, _, sel in [*PAGES[1:], PAGES[0]]:
                        link = pg.locator("[data-testid='stSidebarNav'] a", has_text=name)
                        switches[name].append(switch_page(pg, link, name, sel))
                all_switches = [x for v in switches.values() for x in v]
                results["page_switch_median_s"] = median(all_switches)
                results["page_switch_median_by_page_s"] = {k: median(v) for k, v in switches.items()}

                # checkpoint changes on Embeddings, warm
                pg.locator("[data-testid='stSidebarNav'] a", has_text="Embeddings").click()
                settle(pg, ".js-plotly-plot")
                # the page switches began a new session (goto), so the control is back at the last checkpoint
                ck, at, move = [], len(steps) - 1, -1
                for _ in range(args.rounds * 2 if len(steps) > 1 else 0):
                    if not 0 <= at + move < len(steps):
                        move = -move
                    at += move
                    ck.append(wait_rerun(pg, lambda s=steps[at]: choose(s), ".js-plotly-plot"))
                results["checkpoint_change_median_s"] = median(ck)

                # one sentence, every output: pick the next sentence of the list, warm
                pg.locator("[data-testid='stSidebarNav'] a", has_text="Error analysis").click()
                settle(pg, ".dde-output")
                sentence_box = pg.locator("[data-testid='stSelectbox']").filter(has_text="Sentence (in the order")
                one = []
                for _ in range(args.rounds * 2):
                    def next_sentence() -> None:
                        sentence_box.locator("input").click()
                        pg.keyboard.press("ArrowDown")
                        pg.keyboard.press("Enter")
                    one.append(wait_rerun(pg, next_sentence, ".dde-output"))
                results["one_sentence_view_median_s"] = median(one)

                # full page loads (a new session each time), warm server caches
                loads: list[float] = []
                for _ in range(max(2, args.rounds // 2)):
                    for _, path, sel in PAGES:
                        t = time.perf_counter()
                        pg.goto(f"{url}/{path}")
                        settle(pg, sel)
                        loads.append(time.perf_counter() - t)
                results["full_page_load_median_s"] = median(loads)

                # the Translate page with a new (uncached) test sentence: both arms translate
                pg.goto(f"{url}/translate")
                settle(pg, ".dde-sentence")
                box = pg.locator("[data-testid='stSelectbox']").filter(has_text="Test sentence").locator("input")
                tr = []
                for _ in range(args.rounds):
                    def pick() -> None:
                        box.click()
                        pg.keyboard.press("ArrowDown")
                        pg.keyboard.press("Enter")
                    tr.append(wait_rerun(pg, pick, ".dde-sentence"))
                results["translate_page_new_sentence_median_s"] = median(tr)
                results["server_rss_mb"] = rss_mb(server.pid)
                browser.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    results["translation_two_arms_in_process"] = translation_in_process(exp, n=8)
    (OUT / "app.json").write_text(json.dumps(results, indent=1))
    tgt = {"page_switch_median_s": "< 1 s", "checkpoint_change_median_s": "< 1 s", "server_rss_mb": "< 2048 MB",
           "one_sentence_view_median_s": "<= 1 s"}
    print(f"\nApp benchmark on `{exp}` (preset {view.config.preset}, {os.cpu_count()} CPUs), warm caches\n")
    print("| measure | value | target |\n|---|---|---|")
    print(f"| page switch (sidebar click → drawn), median of {len(all_switches)} | "
          f"{results['page_switch_median_s']:.2f} s | {tgt['page_switch_median_s']} |")
    for k, v in results["page_switch_median_by_page_s"].items():
        print(f"| · to {k} | {v:.2f} s | |")
    print(f"| checkpoint change on Embeddings, median of {len(ck)} | {results['checkpoint_change_median_s']:.2f} s "
          f"| {tgt['checkpoint_change_median_s']} |")
    print(f"| one-sentence view on Error analysis (next sentence, every output drawn), median of {len(one)} | "
          f"{results['one_sentence_view_median_s']:.2f} s | {tgt['one_sentence_view_median_s']} |")
    print(f"| full page load (new session), median of {len(loads)} | {results['full_page_load_median_s']:.2f} s | |")
    t2 = results["translation_two_arms_in_process"]
    print(f"| one sentence by baseline + decoupled (in process, {t2['direction']}), median of {t2['n']} | "
          f"{t2['median_s']:.2f} s | < 1 s |")
    print(f"| Translate page, new test sentence (both arms, browser), median of {len(tr)} | "
          f"{results['translate_page_new_sentence_median_s']:.2f} s | |")
    print(f"| server resident memory after visiting every page | {results['server_rss_mb']:.0f} MB | "
          f"{tgt['server_rss_mb']} |")
    print(f"\nwritten: {OUT / 'app.json'}")


if __name__ == "__main__":
    main()
