"""Reusable widgets: the shared sidebar and the pickers pages use, each ``show``-style (key -> value).

The experiment picker is drawn by ``app.py`` on every run, so its choice survives page switches; pages read
it back with ``current_experiment()``. Model, checkpoint and layer pickers are drawn by the pages that need
them (in the sidebar, under the experiment picker) and offer only what exists in the chosen experiment.
"""

from __future__ import annotations

import functools
import html
import math
from pathlib import Path

import streamlit as st

from ..names import first_of, model_label  # noqa: F401  (model_label: the pages name models with widgets.model_label)
from ..data.varieties import ENG, variety
from . import cache, cache_root, links, runner, shipped

CHOSEN = "dde_experiment"         # session-state key (not a widget key) of the chosen experiment folder


def experiment_picker(key: str = "experiment") -> str | None:
    """Sidebar select box over the experiments found under ``cache_root()``; returns the experiment key.

    Bound to the address (``?experiment=<folder name>``) and the first entry of the "Link to this view" box
    (``links``). The choice is also kept under a plain session-state key, which Streamlit never clears: a widget's
    own state can be dropped when the page changes, and the chosen experiment must survive that. A link naming an
    experiment that is not here says so and stops the page, rather than showing another experiment."""
    root = cache_root()
    dirs = cache.experiment_dirs(str(root))
    if not dirs:
        st.sidebar.info(f"No experiment yet under `{root}`. Start one from **Home**.")
        st.session_state.pop(CHOSEN, None)
        return None
    names = {d: Path(d).name for d in dirs}
    by_name = {n: d for d, n in names.items()}
    # the reader's own run if there is one, else the shipped experiment: fixed by the folders alone, so a link
    # never depends on a session
    default = shipped.first_choice(root, dirs)
    asked = links.asked(key)
    missing = asked if asked is not None and asked not in by_name and st.session_state.get(CHOSEN) is None else None
    chosen = st.session_state.get(CHOSEN)
    if chosen in names and st.session_state.get(key) != chosen:
        st.session_state[key] = chosen          # the widget's state was dropped by a page switch: restore it

    def keep() -> None:                         # a choice lands here before the page runs again
        st.session_state[CHOSEN] = st.session_state[key]

    links.start()
    folder = links.bound(st.sidebar.selectbox, "Experiment", dirs, index=dirs.index(default), key=key,
                         format_func=names.get, on_change=keep, help=f"Experiment folders under {root}")
    st.session_state[CHOSEN] = folder
    if missing is not None:
        st.warning(f"This link is to the experiment `{missing}`, which is not under `{root}` (experiments here: "
                   f"{', '.join(f'`{n}`' for n in by_name)}). Run or copy it there, or pick an experiment in the "
                   "sidebar to look at that one instead.")
        st.stop()
    return cache.experiment_key(folder)


def current_experiment() -> str | None:
    """The experiment key chosen in the sidebar (None when there is no experiment)."""
    folder = st.session_state.get(CHOSEN)
    return cache.experiment_key(folder) if folder else None


def model_picker(exp: str, key: str, *, label: str = "Model", default: str = "decoupled",
                 include_base: bool = True, where=None) -> str:
    v = cache.view(exp)
    options = list(v.models if include_base else v.arms)
    chosen = first_of(options, default)          # an arm name means its first seed ("decoupled" -> "decoupled.s0")
    index = options.index(chosen) if chosen else min(1, len(options) - 1)
    return links.bound((where or st.sidebar).selectbox, label, options, index=index, key=key,
                       format_func=model_label)


CHECKPOINT = "ckpt"             # the one checkpoint control: same key, label, place and kind on every page
CHOSEN_STEP = "dde_checkpoint"  # session-state key (not a widget key) keeping its value across pages


def checkpoint_control(exp: str) -> int:
    """The training step every page looks at, in the sidebar, with every checkpoint of the experiment's arms
    labelled; the choice is kept across pages (a model without that step shows its nearest checkpoint)."""
    v = cache.view(exp)
    steps = sorted({s for a in v.arms for s in v.checkpoints(a)})
    if not steps:
        return 0
    chosen = st.session_state.get(CHOSEN_STEP)
    if chosen not in steps:                      # a session's first page: the address's step, else the last one
        asked = links.asked(CHECKPOINT)
        chosen = int(asked) if asked is not None and asked.isdigit() and int(asked) in steps else steps[-1]
    st.session_state[CHOSEN_STEP] = chosen
    st.session_state[CHECKPOINT] = chosen      # a widget of another page holds no value here: set it each run

    def keep() -> None:                          # a click lands here before the page runs again
        st.session_state[CHOSEN_STEP] = st.session_state[CHECKPOINT]

    return links.bound(st.sidebar.segmented_control, "Checkpoint (training step)", steps, key=CHECKPOINT,
                       required=True, on_change=keep,
                       help="The same control on every page. The base model has only step 0; each arm shows its "
                            "checkpoint nearest to this step.")


def nearest_step(exp: str, model: str, step: int) -> int:
    steps = cache.view(exp).checkpoints(model)
    return min(steps, key=lambda c: abs(c - step))


def site_picker(exp: str, key: str, *, label: str = "Layer", where=None) -> str:
    v = cache.view(exp)
    sites = list(v.sites)
    pen = [s for s in v.penalised_sites if s in sites]
    index = sites.index(pen[0]) if pen else len(sites) // 2

    def fmt(s: str) -> str:
        return f"{s} (penalised)" if s in v.penalised_sites else s

    return links.bound((where or st.sidebar).selectbox, label, sites, index=index, key=key, format_func=fmt,
                       help="The residual-stream output of this decoder layer")


# ---------------------------------------------------------------- text and readings


@functools.lru_cache(maxsize=1)
def _assets() -> tuple[str, str]:
    here = Path(__file__).with_name("assets")
    return (here / "page.css").read_text(encoding="utf-8"), (here / "page.js").read_text(encoding="utf-8")


def page_helpers() -> None:
    """The app's styles and its one script (dir="auto" on text inputs, SVG export on every figure), once per run."""
    css, js = _assets()
    st.html(f"<style>{css}</style>")
    with st.sidebar:
        st.html(f"<script>{js}</script>", unsafe_allow_javascript=True)


def _finite(x) -> bool:
    """A real number that is not NaN (table cells may hold None, NaN or text)."""
    return isinstance(x, (int, float)) and math.isfinite(x)


def _colour(code: str | None) -> str:
    if code and code != ENG:
        try:
            return variety(code).color
        except ValueError:
            pass
    return "#e5e7eb"


def sentence(text: str, code: str | None = None, *, label: str = "", size: str = "1.15rem",
             body_html: str | None = None, cls: str = "dde-sentence", label_html: str = "") -> None:
    """A sentence in its own box, right-to-left for Arabic (left-to-right for English); plain text that can be
    read and copied. ``body_html`` replaces the escaped text (a diff or marked spans of the same text);
    ``label_html`` follows the (escaped) label."""
    rtl = code != ENG
    head = (f'<div style="font-size:0.8rem;color:#555;direction:ltr">{html.escape(label)}{label_html}</div>'
            if label or label_html else "")
    body = body_html if body_html is not None else (html.escape(text) if text else "<i>(empty output)</i>")
    st.markdown(
        f'{head}<div class="{cls}" dir="{"rtl" if rtl else "ltr"}" lang="{"ar" if rtl else "en"}" '
        f'style="border-inline-start:4px solid {_colour(code)};font-size:{size}">{body}</div>',
        unsafe_allow_html=True)


def flags_html(flags: str) -> str:
    return "".join(f'<span class="dde-flag">{html.escape(f)}</span>' for f in str(flags or "").split(", ") if f)


def reading(text: str) -> None:
    """The computed one-line reading of the figure above it."""
    st.markdown(f'<div class="dde-reading"><b>This run:</b> {html.escape(text)}</div>', unsafe_allow_html=True)


def verdict_box(sentences: list[str], title: str) -> None:
    body = " ".join(html.escape(s) for s in sentences)
    st.markdown(f'<div class="dde-verdict"><b>{html.escape(title)}</b> {body}</div>', unsafe_allow_html=True)


def glossary(terms: dict[str, str]) -> None:
    """One small label per term, its explanation in a tooltip (``analysis.plain.GLOSSARY``)."""
    with st.container(horizontal=True, gap="small"):
        st.caption("Words used below (hover for what they mean):")
        for term, text in terms.items():
            st.caption(f"**{term}**", help=text)


def require(exp: str, stage: str, what: str) -> None:
    """Stop the page with a note when the experiment has not reached ``stage`` yet (a run still going)."""
    if not cache.view(exp).has_stage(stage):
        st.info(f"`{cache.view(exp).name}` has no {what} yet: its `{stage}` stage has not finished. This page "
                "fills in when the run gets there (see Home for its progress).")
        st.stop()


def no_experiment() -> None:
    """What a page shows when there is no experiment to look at."""
    st.info("There is no experiment to look at yet. Run the default one from the Home page.")
    st.page_link("pages/home.py", label="Go to Home", icon=":material/home:")
    st.stop()


# ---------------------------------------------------------------- the Run button and its live progress


def run_panel(*, has_experiments: bool) -> None:
    """Start or follow the default experiment.

    Whatever a tab shows comes from the run's own files (``run.lock``, ``progress.json``), so a refresh or a
    second tab finds the same run and can never start a second one."""
    folder = runner.default_folder(cache_root())
    status = runner.status(folder)
    if status is not None and status.running:
        _progress(str(folder))
        return
    if status is not None and status.state == "done":
        return
    if status is None and (folder / "manifest.json").exists() and cache.view(cache.experiment_key(folder)).complete:
        return   # a finished experiment copied here, or run from the command line without progress.json
    place = st.container()
    if status is not None and status.state in ("failed", "stopped", "interrupted"):
        place.warning(f"The last run of `{folder.name}` {status.state}"
                      + (f": {status.message}" if status.message else "") + ". Running it again resumes from "
                      "its last checkpoint.")
        with place.expander("End of its log"):
            st.code(runner.log_tail(folder) or "(no log)")
    elif has_experiments:
        place = st.expander("Reproduce the shipped experiment on this machine" if folder.name.endswith("-rerun")
                            else f"Run the `{folder.name}` teaching experiment too")
    label = "Resume the default experiment" if status is not None else "Run the default experiment"
    place.caption(f"Trains the small default model on this machine ({runner.work()}) into `{folder}`. How long it "
                  "takes depends on this machine: once it starts, its first training steps give an estimate, updated "
                  "as it goes. It runs as a separate process: you can leave this page, refresh, or open another "
                  "tab; it keeps going.")
    if place.button(label, type="primary", key="run_default", icon=":material/play_arrow:"):
        pid, started = runner.start(folder)
        st.toast(f"Started the run (process {pid})." if started else f"A run is already going (process {pid}).")
        st.rerun()


@st.fragment(run_every=2)
def _progress(folder: str) -> None:
    s = runner.status(Path(folder))
    if s is None or not s.running:
        cache.experiment_dirs.clear()
        st.rerun(scope="app")   # finished (or died): redraw the whole page with the results or the error
        return
    st.markdown(f"**Running** `{Path(folder).name}` in process {s.pid} · stage **{s.stage}**")
    text = f"{s.stage}: step {s.step} of {s.total}" if s.total else f"{s.stage}…"
    st.progress(s.fraction, text=text)
    c = st.columns(4)
    c[0].metric("Loss", f"{s.loss:.3f}" if s.loss is not None else "—")
    left = runner.time_left(Path(folder))
    c[1].metric("Time left (whole run)", runner.format_eta(left.seconds_left) if left.seconds_left is not None
                else "measuring…", help=left.basis)
    c[2].metric("Probe accuracy", f"{s.probe_accuracy:.1%}" if s.probe_accuracy is not None else "—",
                help="The latest MSA-vs-rest probe's held-out accuracy")
    c[3].metric("Stages done", len(s.done_stages))
    st.caption(left.basis[:1].upper() + left.basis[1:] + "." + (f" Done: {', '.join(s.done_stages)}"
                                                               if s.done_stages else ""))
