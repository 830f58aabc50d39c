"""Every view is a link: the widgets that make up a page's state live in its address, and the sidebar's
"Link to this view" box spells that address out with a copy button.

``bound(widget, label, ..., key=KEY)`` draws a Streamlit widget (``st.sidebar.selectbox``, ``col.slider``…) bound to
the query parameter ``KEY`` (Streamlit's ``bind="query-params"``: the browser's address follows the widget, and a
link opened in a fresh session sets the widget from it) and records the value as the address spells it. The frame
calls ``start`` once per run, under the experiment picker; every ``bound`` widget then rewrites the box, so it
holds every value drawn so far, whatever ``st.stop`` ends the page.

Why the box builds the link itself: Streamlit drops a bound value from the address while it equals the widget's
default, and the server does not see the browser's address change on same-page reruns; the box writes every value
out, so a link opens the same view even where a default differs (another experiment list, another session).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

RUN = "dde_link_run"            # session-state key: this run's link box and the values recorded in it
LOCAL = "http://127.0.0.1:8501"  # where the app listens by default (.streamlit/config.toml), when the browser's
                                 # address is unknown (Streamlit's AppTest)


def url_value(value, format_func: Callable | None = None) -> str | list[str]:
    """``value`` as a bound widget reads it from the address: a select box's option as its label
    (``format_func``), a multiselect's options as repeated labels, a range slider's two numbers, a bool as
    ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [_one(v, format_func) for v in value]
    return _one(value, format_func)


def _one(v, format_func) -> str:
    if format_func is not None:
        return str(format_func(v))
    return repr(v) if isinstance(v, float) else str(v)


def page_url() -> str:
    """The address of the page now running, without its query: the browser's (``st.context.url``), else the
    page's path on the local server."""
    url = st.context.url
    if url:
        return url
    ctx = get_script_run_ctx()
    path = ""
    if ctx is not None:
        page = ctx.pages_manager.get_pages().get(ctx.pages_manager.current_page_script_hash) or {}
        path = page.get("url_pathname", "")
    return f"{LOCAL}/{path}"


def link(params: dict) -> str:
    """The page's address with ``params`` (key -> value or list of values) as its query."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, [], "")}, doseq=True)
    return page_url() + (f"?{query}" if query else "")


def start(where=None) -> None:
    """Open this run's "Link to this view" box (in the sidebar unless ``where``); it fills as widgets are drawn."""
    box = (where or st.sidebar).expander("Link to this view", icon=":material/link:")
    box.caption("This page with everything chosen on it. Copy it with the button at its right; opened anywhere "
                "this app runs with the same experiments, it shows the same view.")
    st.session_state[RUN] = {"slot": box.empty(), "params": {}}
    _draw()


def remember(key: str, value, format_func: Callable | None = None) -> None:
    """Record ``key``'s value for the link box (nothing to record: None, an empty text)."""
    run = st.session_state.get(RUN)
    if run is None:
        return
    if value is None or value == "":
        run["params"].pop(key, None)
    else:
        run["params"][key] = url_value(value, format_func)
    _draw()


def current() -> str:
    """The link the box shows now."""
    run = st.session_state.get(RUN)
    return link(run["params"] if run else {})


def _draw() -> None:
    run = st.session_state.get(RUN)
    if run is not None:
        run["slot"].code(link(run["params"]), language=None, wrap_lines=True)


def bound(widget: Callable, label: str, *args, key: str, **kwargs):
    """``widget(label, *args, key=key, bind="query-params", **kwargs)``, recorded in the link box; returns its
    value. ``key`` is the query parameter's name: keep it short and stable (links carry it)."""
    value = widget(label, *args, key=key, bind="query-params", **kwargs)
    remember(key, value, kwargs.get("format_func"))
    return value


def asked(key: str) -> str | None:
    """The value the address gives for ``key`` (read before the widget is drawn: Streamlit drops a value the
    widget cannot take)."""
    value = st.query_params.get(key)
    return value if value else None
