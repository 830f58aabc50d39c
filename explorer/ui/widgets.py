"""Reusable widgets: the shared sidebar and the pickers pages use, each ``show``-style (key -> value).

The experiment picker is drawn by ``app.py`` on every run, so its choice survives page switches; pages read
it back with ``current_experiment()``. Model, checkpoint and layer pickers are drawn by the pages that need
them (in the sidebar, under the experiment picker) and offer only what exists in the chosen experiment.
"""

from __future__ import annotations

import html
from pathlib import Path

import streamlit as st

from ..analysis.errors import first_of
from ..data.varieties import ENG, variety
from . import cache, cache_root, runner

CHOSEN = "dde_experiment"         # session-state key (not a widget key) of the chosen experiment folder


def experiment_picker(key: str = "experiment") -> str | None:
    """Sidebar select box over the experiments found under ``cache_root()``; returns the experiment key.

    The choice is also kept under a plain session-state key, which Streamlit never clears: a widget's own
    state can be dropped when the page changes, and the chosen experiment must survive that."""
    root = cache_root()
    dirs = cache.experiment_dirs(str(root))
    if not dirs:
        st.sidebar.info(f"No experiment yet under `{root}`. Start one from **Home**.")
        st.session_state.pop(CHOSEN, None)
        return None
    names = {d: Path(d).name for d in dirs}
    current = st.session_state.get(CHOSEN)
    if current not in names:
        current = next((d for d in dirs if names[d] == "default"), dirs[0])
    folder = st.sidebar.selectbox("Experiment", dirs, index=dirs.index(current), key=key, format_func=names.get,
                                  help=f"Experiment folders under {root}")
    st.session_state[CHOSEN] = folder
    return cache.experiment_key(folder)


def current_experiment() -> str | None:
    """The experiment key chosen in the sidebar (None when there is no experiment)."""
    folder = st.session_state.get(CHOSEN)
    return cache.experiment_key(folder) if folder else None


def model_label(name: str) -> str:
    """'decoupled.s1' -> 'decoupled (probe + penalty) · seed 1'."""
    arm, _, seed = name.rpartition(".s") if name != "base" else ("base", "", "")
    text = {"base": "base (before fine-tuning)", "baseline": "baseline (plain fine-tuning)",
            "decoupled": "decoupled (probe + penalty)", "random": "random subspace (control)"}.get(arm, arm)
    return f"{text} · seed {seed}" if seed else text


def model_picker(exp: str, key: str, *, label: str = "Model", default: str = "decoupled",
                 include_base: bool = True, where=None) -> str:
    v = cache.view(exp)
    options = list(v.models if include_base else v.arms)
    first = first_of(options, default)
    index = options.index(first) if first in options else 0
    return (where or st.sidebar).selectbox(label, options, index=index, key=key, format_func=model_label)


def checkpoint_slider(exp: str, model: str, key: str, *, label: str = "Checkpoint (training step)",
                      where=None) -> int:
    steps = cache.view(exp).checkpoints(model)
    place = where or st.sidebar
    if len(steps) == 1:
        place.caption(f"{label}: {steps[0]} (the {model} model has one checkpoint)")
        return steps[0]
    if st.session_state.get(key) not in steps:
        st.session_state[key] = steps[-1]
    return place.select_slider(label, options=steps, key=key)


def site_picker(exp: str, key: str, *, label: str = "Layer", where=None) -> str:
    v = cache.view(exp)
    sites = list(v.sites)
    pen = [s for s in v.penalised_sites if s in sites]
    index = sites.index(pen[0]) if pen else len(sites) // 2

    def fmt(s: str) -> str:
        return f"{s} (penalised)" if s in v.penalised_sites else s

    return (where or st.sidebar).selectbox(label, sites, index=index, key=key, format_func=fmt,
                                           help="The residual-stream output of this decoder layer")


def sentence(text: str, code: str | None = None, *, label: str = "", size: str = "1.15rem") -> None:
    """A sentence in its own box, right-to-left for Arabic (left-to-right for English)."""
    rtl = code != ENG
    colour = "#e5e7eb"
    if code and code != ENG:
        try:
            colour = variety(code).color
        except ValueError:
            pass
    head = f'<div style="font-size:0.8rem;color:#555;direction:ltr">{html.escape(label)}</div>' if label else ""
    body = html.escape(text) if text else "<i>(empty output)</i>"
    st.markdown(
        f'{head}<div class="dde-sentence" dir="{"rtl" if rtl else "ltr"}" lang="{"ar" if rtl else "en"}" '
        f'style="border-inline-start:4px solid {colour};padding:0.4rem 0.7rem;background:#fafafa;'
        f'font-size:{size};line-height:1.9;border-radius:4px;margin-bottom:0.4rem">{body}</div>',
        unsafe_allow_html=True)


def diff_box(diff_html: str, code: str) -> None:
    """An HTML diff (``analysis.errors.char_diff_html``) in a box, right-to-left unless the text is English."""
    rtl = code != ENG
    st.markdown(f'<div class="dde-diff" dir="{"rtl" if rtl else "ltr"}" style="font-size:1.15rem;line-height:2;'
                f'padding:0.4rem 0.7rem;background:#fafafa;border-radius:4px">{diff_html}</div>',
                unsafe_allow_html=True)


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
        place = st.expander(f"Run the `{folder.name}` teaching experiment too")
    label = "Resume the default experiment" if status is not None else "Run the default experiment"
    place.caption(f"Trains the small default model and its three arms on this machine, then evaluates and caches "
                  f"everything into `{folder}` (about ten minutes on a laptop). It runs as a separate process: "
                  "you can leave this page, refresh, or open another tab; it keeps going.")
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
    c[1].metric("Time left in stage", runner.format_eta(s.eta_s))
    c[2].metric("Probe accuracy", f"{s.probe_accuracy:.1%}" if s.probe_accuracy is not None else "—",
                help="The latest MSA-vs-rest probe's held-out accuracy")
    c[3].metric("Stages done", len(s.done_stages))
    if s.done_stages:
        st.caption("Done: " + ", ".join(s.done_stages))
