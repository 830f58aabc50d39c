"""Dialect Decoupling Explorer: ``streamlit run app.py`` (works offline).

The entry point builds the page list explicitly and draws the shared sidebar (experiment picker); each page
in ``pages/`` reads its own widgets, calls the explorer once and draws.
"""

import streamlit as st

from explorer.data.corpus import CorpusError
from explorer.files import StoreError
from explorer.model.sites import ModelLoadError
from explorer.ui import freeze_heap, widgets

freeze_heap()    # once per process: the imported libraries leave Streamlit's per-run garbage collection

st.set_page_config(page_title="Dialect Decoupling Explorer", page_icon="🗺️", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    st.Page("pages/subspace.py", title="Subspace", icon=":material/timeline:"),
    st.Page("pages/translate.py", title="Translate", icon=":material/translate:"),
    st.Page("pages/error_analysis.py", title="Error analysis", icon=":material/rule:"),
]

page = st.navigation(PAGES)
st.session_state[widgets.ENTERED] = True
widgets.page_helpers()   # styles, dir="auto" on text inputs, SVG export of figures
try:
    widgets.experiment_picker()
    page.run()
except (StoreError, CorpusError, ModelLoadError) as e:
    st.error(f"{type(e).__name__}: {e}")  # a folder, corpus or model to fix: say what, not a traceback
