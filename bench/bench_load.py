"""A classroom on one laptop: many sessions opening a warm page at once, and what one page render costs the server.

    python bench/bench_load.py                          # cache/default if complete, else the tiny preset
    python bench/bench_load.py --exp /tmp/x --sessions 20 --rounds 3

Each session is what a browser tab does over Streamlit's websocket (``/_stcore/stream``): it connects, asks for
the page (a ``rerun_script`` BackMsg naming it, as the frontend does on load) and reads the server's ForwardMsgs
until ``script_finished``: the script really runs and every element is serialised and sent, only the drawing in
a browser is left out (Playwright would put 20 Chromium tabs on the same two cores as the server). Measures:

- the load time of one page per session, with ``--sessions`` sessions started together (``--rounds`` times,
  pages in turn), reported as median and p95 (target p95 < 3 s with 20 sessions);
- the health endpoint (``/_stcore/health``) polled every 0.25 s throughout: answers, failures, slowest answer;
- the server's CPU time per warm render: the server process's user+system CPU (psutil) over ``--renders``
  sequential sessions of each page, divided by their number (goal <= 150 ms).

Everything runs against 127.0.0.1 and is bounded (timeouts on every wait); the server is always stopped.
Writes bench/out/load.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
OUT = REPO / "bench" / "out"
PAGES = ("", "embeddings", "subspace", "translate", "error_analysis")   # url paths; "" is Home
TIMEOUT = 120.0


async def load_page(url: str, page: str, timeout: float = TIMEOUT) -> dict:
    """Open one session, render ``page`` once; returns seconds, messages and bytes received."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
    t0 = time.perf_counter()
    n = size = 0
    async with websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_name = page
        await ws.send(msg.SerializeToString())
        deadline = t0 + timeout
        while True:
            data = await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.perf_counter()))
            n += 1
            size += len(data)
            fwd = ForwardMsg()
            fwd.ParseFromString(data)
            kind = fwd.WhichOneof("type")
            if kind == "script_finished":
                break
            if kind == "delta" and fwd.delta.new_element.WhichOneof("type") == "exception":
                raise RuntimeError(f"page {page or 'home'} raised: {fwd.delta.new_element.exception.message}")
    return {"page": page or "home", "seconds": time.perf_counter() - t0, "messages": n, "bytes": size}


async def poll_health(url: str, stop: asyncio.Event, out: list) -> None:
    loop = asyncio.get_running_loop()

    def once() -> tuple[float, bool]:
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
                ok = r.read().strip() == b"ok"
        except OSError:
            ok = False
        return time.perf_counter() - t, ok

    while not stop.is_set():
        out.append(await loop.run_in_executor(None, once))
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.25)
        except TimeoutError:
            pass


async def classroom(url: str, sessions: int, rounds: int) -> tuple[list[dict], list]:
    health: list = []
    stop = asyncio.Event()
    poller = asyncio.create_task(poll_health(url, stop, health))
    loads: list[dict] = []
    try:
        for r in range(rounds):
            page = PAGES[r % len(PAGES)]
            loads += await asyncio.gather(*[load_page(url, page) for _ in range(sessions)])
    finally:
        stop.set()
        await poller
    return loads, health


def cpu_seconds(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))] if xs else float("nan")


def main() -> None:
    from bench_app import free_port, pick_experiment, start_server

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", help="experiment folder (default: cache/default if complete, else a tiny run)")
    ap.add_argument("--sessions", type=int, default=20, help="sessions opening a page at the same time")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of simultaneous loads (pages in turn)")
    ap.add_argument("--renders", type=int, default=8, help="sequential renders per page for the CPU cost")
    ap.add_argument("--server-option", action="append", default=[], metavar="--server.X=VALUE",
                    help="extra option for `streamlit run` (repeatable), e.g. --server.fileWatcherType=none")
    args = ap.parse_args()
    exp = pick_experiment(args.exp)
    OUT.mkdir(parents=True, exist_ok=True)
    res: dict = {"experiment": str(exp), "machine": platform.machine(), "cpus": os.cpu_count(),
                 "load_average_before": os.getloadavg(), "sessions": args.sessions, "rounds": args.rounds,
                 "server_options": args.server_option}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        root = Path(tmp)
        (root / exp.name).symlink_to(exp, target_is_directory=True)
        port = free_port()
        server = start_server(root, port, root / "streamlit.log", *args.server_option)
        url = f"http://127.0.0.1:{port}"
        try:
            for page in PAGES:      # cold: fill the caches (models, classifier, tables, figures)
                asyncio.run(load_page(url, page, timeout=600))
            for page in PAGES:
                asyncio.run(load_page(url, page))
            cpu = {}
            for page in PAGES:      # warm, one session at a time: the server's CPU per render
                before, t = cpu_seconds(server.pid), time.perf_counter()
                walls = [asyncio.run(load_page(url, page))["seconds"] for _ in range(args.renders)]
                cpu[page or "home"] = {"cpu_ms_per_render": 1000 * (cpu_seconds(server.pid) - before) / args.renders,
                                       "wall_median_s": statistics.median(walls),
                                       "elapsed_s": time.perf_counter() - t}
            res["warm_render"] = cpu
            loads, health = asyncio.run(classroom(url, args.sessions, args.rounds))
            secs = [x["seconds"] for x in loads]
            res["classroom"] = {"loads": len(secs), "median_s": statistics.median(secs), "p95_s": pct(secs, 0.95),
                                "max_s": max(secs),
                                "by_page_p95_s": {p or "home": pct([x["seconds"] for x in loads
                                                                    if x["page"] == (p or "home")], 0.95)
                                                  for p in PAGES[:args.rounds]}}
            res["health"] = {"polls": len(health), "failures": sum(not ok for _, ok in health),
                             "max_s": max((d for d, _ in health), default=float("nan")),
                             "p95_s": pct([d for d, _ in health], 0.95)}
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    res["load_average_after"] = os.getloadavg()
    (OUT / "load.json").write_text(json.dumps(res, indent=1))
    print(f"\nClassroom load on `{exp}` ({os.cpu_count()} CPUs, load average before "
          f"{res['load_average_before'][0]:.2f}), warm caches\n")
    print("| measure | value | target |\n|---|---|---|")
    c = res["classroom"]
    print(f"| {args.sessions} sessions loading a page at once, p95 of {c['loads']} loads | {c['p95_s']:.2f} s "
          f"(median {c['median_s']:.2f} s, max {c['max_s']:.2f} s) | p95 < 3 s |")
    for page, p95 in c["by_page_p95_s"].items():
        print(f"| · {page}, p95 | {p95:.2f} s | |")
    h = res["health"]
    print(f"| health endpoint during the load | {h['polls'] - h['failures']}/{h['polls']} answered, slowest "
          f"{h['max_s']:.2f} s | all answered |")
    for page, r in res["warm_render"].items():
        print(f"| server CPU per warm render · {page} | {r['cpu_ms_per_render']:.0f} ms (wall "
              f"{r['wall_median_s']:.2f} s) | <= 150 ms |")
    print(f"\nwritten: {OUT / 'load.json'}")


if __name__ == "__main__":
    main()
