"""Dialect Decoupling Explorer: ``streamlit run app.py`` (works offline).

The entry point builds the page list explicitly and draws the shared sidebar (experiment picker); each page
in ``pages/`` reads its own widgets, calls the explorer once and draws.
"""

import streamlit as st

from explorer.ui import freeze_heap, shell, widgets

freeze_heap()    # once per process: the imported libraries leave Streamlit's per-run garbage collection

st.set_page_config(page_title="Dialect Decoupling Explorer", page_icon="🗺️", layout="wide")

page = shell.navigation()       # the page list lives in explorer/ui/shell.py (every page also checks the frame)
widgets.page_helpers()          # styles, dir="auto" on text inputs, SVG export of figures
try:
    widgets.experiment_picker()
    shell.app_ran()
    page.run()
except shell.FOLDER_ERRORS as e:    # a folder, corpus or model to fix: say what, not a traceback
    shell.show_error(e)
