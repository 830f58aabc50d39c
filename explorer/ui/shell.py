"""The app's frame: its page list, and the guard that lets any page URL be the first one opened.

Why the guard. Streamlit keeps a process-wide flag, ``PagesManager.uses_pages_directory`` (streamlit/runtime/
pages_manager.py), set to True when the server first sees a ``pages/`` folder beside the entry script and set to
False only when a script calls ``st.navigation``. While it is True, a script run does not execute ``app.py``:
it builds the old "multipage v1" page list from ``pages/*.py`` and runs the page the URL names directly
(``_mpa_v1`` in streamlit/runtime/scriptrunner/script_runner.py). So on a fresh server, the first session that
opens ``/translate`` runs ``pages/translate.py`` without ``app.py``: no experiment picker, hence "no experiment".
Opening Home first hid it, because ``app.py`` then calls ``st.navigation`` and clears the flag for the whole
process.

The fix keeps ``pages/`` (docs/design.md §5) and touches no Streamlit internals: ``app.py`` marks every run in which it
drew the frame (``app_ran``), and every page starts with ``page_setup()``. When a session's very first run finds
no mark, the page was run without ``app.py``: it declares the app's page list with ``st.navigation`` (which ends
the v1 mode for the rest of the process) and asks for a rerun, which Streamlit serves through ``app.py`` on the
same URL (a page's hash is its URL path in both modes). A first run carries no widget event, so nothing is lost.

Later runs of a session never take that path on a real server (the flag stays False). Streamlit's ``AppTest``
resets the flag before every run, so there every run after the first executes the page alone, as it always
did; the guard does not reroute those (that would drop the button click that started the run, and calling
``st.navigation`` mid-page would change the page's widget ids): it draws the frame's shared parts itself.
"""

from __future__ import annotations

import streamlit as st

from ..data.corpus import CorpusError
from ..files import StoreError
from ..model.errors import ModelLoadError
from . import widgets

APP_RAN = "dde_app_ran"           # session-state mark: app.py drew the frame for the page now running
SEEN = "dde_frame_seen"           # this session has had the frame at least once
FOLDER_ERRORS = (StoreError, CorpusError, ModelLoadError)   # a folder, corpus or model to fix: shown, not raised

PAGE_FILES = (  # (script, title, icon): the one list of pages
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/embeddings.py", "Embeddings", ":material/scatter_plot:"),
    ("pages/subspace.py", "Subspace", ":material/timeline:"),
    ("pages/translate.py", "Translate", ":material/translate:"),
    ("pages/error_analysis.py", "Error analysis", ":material/rule:"),
)


def navigation():
    """``st.navigation`` over the app's pages (Home first, the default); returns the page the URL names."""
    return st.navigation([st.Page(path, title=title, icon=icon, default=i == 0)
                          for i, (path, title, icon) in enumerate(PAGE_FILES)])


def app_ran() -> None:
    """Called by ``app.py`` right before it runs the page: the page's ``page_setup`` will find the mark."""
    st.session_state[APP_RAN] = True
    st.session_state[SEEN] = True


def page_setup() -> None:
    """The first call of every page: reroute through ``app.py`` when a session's first run skipped it.

    A later run without ``app.py`` (only Streamlit's ``AppTest`` does that) draws the frame's shared parts
    here, in the same order ``app.py`` draws them, so that the page looks and reads its widgets as it does on
    a real server."""
    if st.session_state.pop(APP_RAN, False):
        return
    if not st.session_state.get(SEEN):
        st.session_state[SEEN] = True   # once: never a loop
        navigation()    # declares the app's pages: Streamlit leaves its pages/-folder mode for good
        st.rerun()      # same URL, now through app.py
    widgets.page_helpers()
    widgets.experiment_picker()


def show_error(e: Exception) -> None:
    st.error(f"{type(e).__name__}: {e}")  # say what to fix, not a traceback
