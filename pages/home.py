"""Home: what this run shows (a computed verdict), the headline results, what the experiment is, the Run button."""

import streamlit as st

from explorer.analysis import plain
from explorer.analysis.errors import CONFIDENT
from explorer.analysis.readings import map_reading
from explorer.data.varieties import KINDS
from explorer.files import StoreError
from explorer.ui import cache, cache_root, exports, figures, links, shell, shipped, tables, widgets

shell.page_setup()
st.title("Dialect Decoupling Explorer")
st.markdown("A small-scale rerun of *When Alignment Hurts: Decoupling Representational Spaces in Multilingual "
            "Models* (Elshabrawy et al., 2025, [arXiv 2508.12803](https://arxiv.org/abs/2508.12803)): does pushing a "
            "model's hidden states away from Modern Standard Arabic help it write Arabic dialects?")

exp = widgets.current_experiment()
view = table = None
try:
    view = cache.view(exp) if exp else None
    table = cache.headline_table(exp) if exp else None
except StoreError as e:        # shown here, so that the rest of Home (and the experiments list) still draws
    st.error(f"{type(e).__name__}: {e}")
if view is not None:
    shipped.notice(view)      # a packed copy says so: when and on what it was made, how to reproduce it
if view is not None and table is not None and not table.empty:
    st.header(f"What `{view.name}` shows")
    widgets.verdict_box(cache.plain_summary(exp), "In short:")
    widgets.glossary(plain.GLOSSARY)
    with st.expander("The full verdict, with its numbers"):
        widgets.verdict_box(cache.verdict(exp), "The verdict:")
        st.caption("Computed from this run's numbers below (never written by hand), as the short version above is; "
                   "the paper's claim is +2.0 chrF++ on average for MSA → dialect with decoupling, with a "
                   "random-subspace control that does not help.")
    notes = cache.data_notes(exp)
    if notes:
        st.markdown("**Data notes** (from loading the corpus): " + " · ".join(notes))
    arms = dict.fromkeys(["base", *(view.arm_of(m) for m in view.arms)])   # one column per arm: its mean over seeds
    models = [a for a in arms if f"chrF++ {a}" in table.columns]
    tables.headline(table, models, exports.file_name(view.name, "chrf-per-direction"))
    n_seeds = len(view.seeds)
    st.caption("chrF++ per translation direction (higher is better)"
               + (f", each arm the mean ± sd over its {n_seeds} seeds" if n_seeds > 1 else ", one seed per arm")
               + ". *copy src* is the score of handing back the source unchanged: between varieties this close it is "
               "a high bar, and a model below it (grey) has not learned to translate yet. Δ is an arm minus baseline "
               "on the same test sentences with a 95% interval "
               + ("from a two-level bootstrap (over seeds, then test sentences), so it includes training noise; "
                  "*noise floor* is how far two baseline seeds land apart. Blue or red: the interval excludes zero "
                  "and the Δ is larger than the noise floor." if n_seeds > 1 else
                  "over test sentences only: with one seed it ignores training noise. Blue or red: the interval "
                  "excludes zero."))

    looks = cache.leakage(exp)
    if not looks.empty:
        st.subheader("What the outputs look like")
        tables.leakage(looks, exports.file_name(view.name, "outputs-look-like"))
        clf = view.classifiers()
        acc = clf.get("dialect_id", {}).get("accuracy")
        bal = clf.get("msa_vs_dialect", {}).get("balanced_accuracy")
        st.caption("MSA → dialect outputs only, mean over directions (± sd over seeds). *as requested*: share the "
                   "dialect classifier assigns to the dialect that was asked for"
                   + (f" ({acc:.0%} accurate on the test split)" if acc is not None else "")
                   + "; *called MSA*: share the MSA-vs-dialect classifier calls MSA, the MSA leakage"
                   + (f" ({bal:.0%} balanced accuracy)" if bal is not None else "")
                   + "; *same for every target*: test sentences whose outputs are identical whatever dialect was "
                   "asked for. The references row is what a perfect system would score.")
        held = cache.not_msa_breakdown(exp)
        if not held.empty:
            st.markdown("**What the outputs not called MSA hold** (MSA → dialect, mean over seeds)")
            tables.html_table(held, numbers={c: ".0%" for c in held.columns[2:]},
                              download=(held, exports.file_name(view.name, "not-called-msa")))
            st.caption("*Not called MSA* is not the same as *dialect*. Of the outputs the MSA-vs-dialect classifier "
                       "does not call MSA: *garbled* ones repeat themselves, stop far short of the reference, or are "
                       "mostly words found in no training text; the rest is split by the dialect classifier's guess "
                       f"when it is at least {CONFIDENT:.0%} sure (*the requested dialect*, *another variety*), else "
                       "*no confident guess*. Each share is of the outputs not called MSA.")

    dose = cache.dose_response(exp)
    if not dose.empty:
        st.subheader("Dose–response: the penalty's strength λ")
        tables.dose_table(dose, exports.file_name(view.name, "dose-response"))
        st.plotly_chart(cache.figure("dose", exp), width="stretch",
                        config=figures.config(exports.file_name(view.name, "dose-response")))
        st.caption("One decoupled arm per λ (the baseline is λ = 0), each averaged over its seeds: the mean Δ "
                   "chrF++ over directions with its interval, MSA leakage, the as-requested share, and the accuracy "
                   "of a probe fitted afterwards on each model's states at the penalised layer (0.5 = no MSA "
                   "information left). A real effect grows with λ; a flat line is no effect.")

    deltas = cache.deltas(exp)
    if not deltas.empty:
        systems = [s for s in dict.fromkeys(deltas["system"]) if s != "base"] + \
            (["base"] if "base" in set(deltas["system"]) else [])
        c1, c2 = st.columns(2)
        system = links.bound(c1.selectbox, "Arm compared with baseline", systems, key="home_system",
                             format_func=widgets.model_label)
        kind = links.bound(c2.radio, "Direction", list(KINDS[:2]), key="home_kind", horizontal=True)
        st.plotly_chart(cache.figure("map", exp, system, kind), width="stretch",
                        config=figures.config(exports.file_name(view.name, "delta-map", model=system, extra=[kind])))
        widgets.reading(map_reading(cache.map_frame(exp, system, kind), system, kind))
        st.plotly_chart(cache.figure("bars", exp, system, kind), width="stretch",
                        config=figures.config(exports.file_name(view.name, "delta-bars", model=system, extra=[kind])))
        st.caption(f"One colour scale and one axis for every arm and direction (±{cache.delta_limit(exp):g} chrF++), so "
                   "the same colour means the same number everywhere. Large dots and coloured bars: the Δ reads "
                   "better or worse (its 95% interval excludes zero and, with several seeds, it is beyond the noise "
                   "floor); each is the mean over the arm's seeds. A run that supports the paper shows blue across the MSA → dialect map for "
                   "decoupled and not for random; red, or blue for both, does not.")

st.header("What the experiment is")
st.markdown(
    """
**Arabic is diglossic.** Modern Standard Arabic (MSA) is the Arabic of school, books and the news; daily life is
spoken in regional *dialects*: Egyptian, Moroccan, Levantine, Gulf and many more, which differ from MSA in words,
grammar and spelling. Language models read far more MSA than dialect, so they learn each dialect largely
*through* MSA: inside the model, a dialect sentence lands close to its MSA translation. That helps the model
understand dialects, but when it has to *write* one it drifts back towards MSA.

**The claim.** While fine-tuning, the authors keep re-estimating the directions of the model's hidden states that
signal "this is MSA" (with a variational probe) and add a small penalty on how far the hidden states point along
them. On 25 Arabic city dialects, dialect translation improved by +2.0 chrF++ on average (up to +4.9) at a small
cost on MSA; the same penalty on a *random* direction did not help, which is the evidence that the MSA directions
themselves matter.

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
    exports.csv_button(overview, "dde_experiments")
widgets.run_panel(has_experiments=not overview.empty)
if view is not None and (table is None or table.empty):
    st.info(f"`{view.name}` has no evaluation results yet; they appear when its run reaches the eval stage.")
