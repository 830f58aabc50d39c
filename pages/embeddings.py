"""Embeddings: where sentences of each variety sit in a model's hidden states, two models side by side."""

import streamlit as st

from explorer.ui import cache, figures, widgets

widgets.entry_guard()
st.title("Embeddings")
exp = widgets.current_experiment() or widgets.no_experiment()
view = cache.view(exp)
widgets.require(exp, "represent", "sentence representations")

side = st.sidebar
left = widgets.model_picker(exp, "emb_left", label="Left model", default="baseline")
right = widgets.model_picker(exp, "emb_right", label="Right model", default="decoupled")
step = widgets.checkpoint_slider(exp, right if right != "base" else left, "emb_step")
site = widgets.site_picker(exp, "emb_site")
method = side.radio("Layout", ["UMAP", "PCA"], key="emb_method", horizontal=True,
                    help="UMAP keeps neighbourhoods (cosine distance); PCA keeps the two widest directions.")
colour = side.radio("Colour by", ["variety", "region"], key="emb_colour", horizontal=True,
                    format_func={"variety": "variety", "region": "dialect group"}.get)
links = side.checkbox("Link translations of the same sentence", key="emb_links")

rows = cache.index(exp)
st.caption(f"Mean-pooled hidden states at **{site}** of {rows['sent_id'].nunique()} parallel sentences in "
           f"{rows['variety'].nunique()} varieties, one dot per sentence and variety (★ = MSA). Models that "
           "entangle dialects with MSA put each dialect dot next to its MSA translation; decoupling should pull the "
           "dialects apart from MSA while keeping the meaning.")
cols = st.columns(2)
for col, name in zip(cols, (left, right)):
    s = 0 if name == "base" else min(view.checkpoints(name), key=lambda c: abs(c - step))
    with col:
        fig = figures.embedding(cache.points(exp, name, s, site, method), colour_by=colour, links=links,
                                title=f"{widgets.model_label(name)} · step {s}")
        st.plotly_chart(fig, width="stretch", key=f"emb_fig_{col is cols[0]}")
st.caption("How to read it: dots close together are sentences the model represents alike; hover a dot for its text "
           "and id, and turn on the links to see how far each dialect sentence sits from its MSA translation.")
