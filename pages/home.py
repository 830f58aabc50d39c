"""Home: what the experiment is, the experiments present, the Run button, and the headline results."""

import streamlit as st

from explorer.data.varieties import KINDS
from explorer.ui import cache, cache_root, figures, shell, widgets

shell.page_setup()   # first: a page opened before any other still gets the app's frame

st.title("Dialect Decoupling Explorer")
st.markdown(
    """
**Arabic is diglossic.** Modern Standard Arabic (MSA) is the Arabic of school, books and the news; daily life is
spoken in regional *dialects*: Egyptian, Moroccan, Levantine, Gulf and many more, which differ from MSA in words,
grammar and spelling. Language models read far more MSA than dialect, so they learn each dialect largely
*through* MSA: inside the model, a dialect sentence lands close to its MSA translation. That helps the model
understand dialects, but when it has to *write* one it drifts back towards MSA.

**The claim.** Elshabrawy et al. (2025), *When Alignment Hurts: Decoupling Representational Spaces in
Multilingual Models* ([arXiv 2508.12803](https://arxiv.org/abs/2508.12803)), test this directly. While fine-tuning,
they keep re-estimating the directions of the model's hidden states that signal "this is MSA" (with a variational
probe) and add a small penalty on how far the hidden states point along them. On 25 Arabic city dialects, dialect
translation improved by +2.0 chrF++ on average (up to +4.9) at a small cost on MSA; the same penalty on a *random*
direction did not help, which is the evidence that the MSA directions themselves matter.

**What this explorer does.** It reruns that experiment at a small scale on this machine. One base model (first
trained on English ↔ MSA, so that MSA dominates) is fine-tuned three ways on MSA ↔ dialect translation, with the
same data, seed and number of steps:

- **baseline**: plain fine-tuning;
- **decoupled**: fine-tuning plus the penalty on the MSA subspace, re-estimated every few steps;
- **random**: the same penalty on a random subspace of the same size (the control).

**base** is the starting model before any of them. The other pages look inside: *Embeddings* (where sentences
sit), *Subspace* (the MSA directions over training), *Translate* (switch decoupling on and off yourself) and
*Error analysis* (read, filter, tag and export every test translation).
"""
)

st.header("Experiments")
overview = cache.experiments_overview(str(cache_root()))
if overview.empty:
    st.info(f"No experiment has been run yet (looked in `{cache_root()}`).")
else:
    st.dataframe(overview, hide_index=True, width="stretch")
widgets.run_panel(has_experiments=not overview.empty)

exp = widgets.current_experiment()
if exp is None:
    st.stop()
view = cache.view(exp)
table = cache.headline_table(exp)
st.header(f"Results of `{view.name}`")
if table.empty:
    st.info("This experiment has no evaluation results yet; they appear when its run reaches the eval stage.")
    st.stop()

models = [c.removeprefix("chrF++ ") for c in table.columns if c.startswith("chrF++ ") and c != "chrF++ copy src"]
fmt = {f"chrF++ {m}": st.column_config.NumberColumn(f"chrF++ {m}", format="%.2f")
       for m in [*models, "copy src"]}
fmt |= {c: st.column_config.NumberColumn(c, format="%+.2f") for c in table.columns if c.startswith("Δ ")}
st.dataframe(table.drop(columns=["code"]), hide_index=True, width="stretch", column_config=fmt)
st.caption("chrF++ of every model per translation direction (higher is better); Δ is an arm minus baseline on the "
           "same test sentences, with a 95% paired-bootstrap interval: an interval that excludes 0 is a difference "
           "the test set supports. Small models on small data move little; read the sign and interval, not the "
           "size. *copy src* is the score of handing back the source unchanged: between varieties this close it is "
           "a high bar (MSA copied scores 45–98 against the dialect references), and a model's score means "
           "little until it is set against it.")

deltas = cache.deltas(exp)
if not deltas.empty:
    systems = [s for s in ("decoupled", "random", "base") if s in set(deltas["system"])]
    c1, c2 = st.columns(2)
    system = c1.selectbox("Arm compared with baseline", systems, key="home_system")
    kind = c2.radio("Direction", list(KINDS[:2]), key="home_kind", horizontal=True)
    frame = cache.map_frame(exp, system, kind)
    st.plotly_chart(figures.delta_map(frame, f"Δ chrF++ ({system} − baseline), {kind}"), width="stretch")
    st.caption("Each dot is a dialect's city, coloured by how much the arm changed chrF++ against baseline (blue "
               "better, red worse, white no change); large dots have a 95% interval that excludes zero.")
    st.plotly_chart(figures.delta_bars(table, deltas, system), width="stretch")
    st.caption("One bar per direction: the arm's chrF++ minus baseline's; the whisker is the 95% bootstrap "
               "interval, and a bar is coloured only when that interval excludes zero.")
