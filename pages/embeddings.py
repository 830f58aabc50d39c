"""Embeddings: where sentences of each variety sit in a model's hidden states, two models side by side, each with
its measured distance of every dialect to MSA."""

import streamlit as st

from explorer.analysis.readings import embedding_reading
from explorer.data.varieties import variety_label
from explorer.ui import cache, exports, figures, links, shell, tables, widgets

shell.page_setup()
st.title("Embeddings")
exp = widgets.current_experiment() or widgets.no_experiment()
view = cache.view(exp)
widgets.require(exp, "represent", "sentence representations")

step = widgets.checkpoint_control(exp)
side = st.sidebar
left = widgets.model_picker(exp, "emb_left", label="Left model", default="baseline")
right = widgets.model_picker(exp, "emb_right", label="Right model", default="decoupled")
site = widgets.site_picker(exp, "emb_site")
method = links.bound(side.radio, "Layout", ["UMAP", "PCA"], key="emb_method", horizontal=True,
                     help="UMAP keeps neighbourhoods (cosine distance); PCA keeps the two widest directions.")
colour = links.bound(side.radio, "Colour by", ["variety", "region"], key="emb_colour", horizontal=True,
                     format_func={"variety": "variety", "region": "dialect group"}.get)
link = links.bound(side.selectbox, "Link translations to MSA for", ["", *view.dialects], key="emb_link",
                   format_func=lambda c: "no dialect" if not c else variety_label(c),
                   help="Draw a line from each sentence of one dialect to its MSA translation.")

rows = cache.index(exp)
st.caption(f"Mean-pooled hidden states at **{site}** of {rows['sent_id'].nunique()} parallel sentences in "
           f"{rows['variety'].nunique()} varieties, one dot per sentence and variety (★ = MSA). Beside each cloud, "
           "the measured distance of every dialect to MSA in that model: the plot shows where sentences fall, the "
           "numbers say how far apart they are.")
distances = {}
for i, (col, name) in enumerate(zip(st.columns(2), (left, right))):
    s = 0 if name == "base" else widgets.nearest_step(exp, name, step)
    with col:
        title = f"{widgets.model_label(name)} · step {s}"
        st.plotly_chart(cache.figure("embedding", exp, name, s, site, method, colour, link, title), width="stretch",
                        key=f"emb_fig_{i}", config=figures.config(
                            exports.file_name(view.name, "embedding", model=name, layer=site, step=s, extra=[method])))
        dist = cache.msa_distances(exp, name, s, site)
        tables.html_table(dist, numbers={c: ".3g" for c in dist.columns[1:]},
                          download=(dist, exports.file_name(view.name, "distance-to-msa", model=name, layer=site, step=s)))
        distances[name] = dist
if len(distances) == 2:
    widgets.reading(embedding_reading(distances, site))
every = cache.seed_distances(exp, step, site)
if len(view.seeds) > 1 and not every.empty:
    st.subheader("Every model, every seed")
    shown = every.assign(model=[widgets.model_label(m) for m in every["model"]])
    tables.html_table(shown, numbers={"step": "d"} | {c: ".3g" for c in every.columns[2:]},
                      download=(every, exports.file_name(view.name, "distance-to-msa-every-seed", layer=site, step=step)))
    st.caption(f"The mean over dialects of the distances above, for every seed of every arm at {site} (each at its "
               "checkpoint nearest the chosen step). Two seeds of one arm differ only by training noise: a "
               "difference between arms smaller than that is not a difference.")
st.caption("How to read it: dots close together are sentences the model represents alike; hover a dot for its text. "
           "The numbers beside each cloud are computed on the full hidden states, not on the 2-D layout: *paired "
           "1 − cos* is the mean cosine distance between a dialect sentence and its own MSA translation, *centroid* "
           "columns compare the variety means. Decoupling should make these larger than in the baseline at and "
           "after the penalised layer; equal numbers mean the two clouds differ only by the layout's chance.")
