"""Subspace: the estimated MSA directions over training, and what they do to the geometry."""

import streamlit as st

from explorer.ui import cache, figures, widgets

widgets.entry_guard()
st.title("The MSA subspace over training")
exp = widgets.current_experiment() or widgets.no_experiment()
view = cache.view(exp)

probed = [a for a in view.arms if a != "baseline"]
if not probed:
    st.info("This experiment has no decoupled or random arm with a checkpoint yet.")
    st.stop()
arm = st.sidebar.selectbox("Arm whose refits to show", probed, key="sub_arm", format_func=widgets.model_label)
site = widgets.site_picker(exp, "sub_site")

st.subheader("How the estimate moves")
refits = cache.refits(exp, arm)
if refits.empty:
    st.info(f"The {arm} arm has no refits recorded.")
else:
    st.plotly_chart(figures.angles(refits), width="stretch")
    st.caption("Each point is one refit of the probe. 0° means the new MSA subspace is the old one; 90° means it is "
               "orthogonal to it. A curve that settles means the model keeps MSA in a stable place.")

st.subheader("What the probe sees, per variety")
metric = st.radio("Probe metric", ["accuracy", "code_length_bits"], key="sub_metric", horizontal=True,
                  format_func={"accuracy": "accuracy", "code_length_bits": "code length (bits)"}.get)
per = cache.refit_varieties(exp, arm)
if per.empty:
    st.info("No per-variety probe results (the random arm draws its subspace, it does not fit a probe).")
else:
    st.plotly_chart(figures.probe_per_variety(per, metric), width="stretch")
    st.caption("Accuracy: how well the probe tells each variety's tokens apart as MSA or not (0.5 is chance for "
               "the MSA-vs-rest task). Code length: bits needed to transmit the labels with the probe; shorter "
               "means MSA is easier to read off the hidden states.")

widgets.require(exp, "represent", "geometry tables")
st.subheader("MSA-subspace energy per variety, over checkpoints")
names = [m for m in ("baseline", "decoupled") if m in view.models] or list(view.arms)[:2]
heats = {name: cache.energy_heatmap(exp, name, site) for name in names}
zrange = figures.shared_range(list(heats.values()))
for col, (name, heat) in zip(st.columns(2), heats.items()):
    with col:
        if not heat.notna().any().any():
            st.info(f"No MSA subspace at {site} for {name}: energy is measured at the penalised layer(s) only.")
        else:
            st.plotly_chart(figures.energy_heatmap(heat, f"{widgets.model_label(name)} at {site}", zrange),
                            width="stretch", key=f"heat_{name}")
st.caption("Each cell is the average share of a variety's sentence vector that lies inside the MSA subspace "
           "(‖Uᵀh‖/‖h‖) at that checkpoint. Decoupling is working when the dialect rows fade over training in the "
           "decoupled arm but not in the baseline.")

st.subheader("Distance to MSA, layer by layer")
geo = cache.geometry_long(exp)
steps = sorted(int(s) for s in geo["step"].unique()) if not geo.empty else []
if not steps:
    st.info("No geometry tables yet: they are written by the represent stage.")
    st.stop()
step = st.select_slider("Checkpoint", steps, value=steps[-1], key="sub_step")
metric2 = st.selectbox("Measure", list(figures.GEOMETRY_LABELS), key="sub_geo_metric",
                       format_func=figures.GEOMETRY_LABELS.get)
pick = geo[(geo["step"] == step) | (geo["model"] == "base")]   # the base model is the step-0 reference
st.plotly_chart(figures.per_layer(pick, metric2, f"{figures.GEOMETRY_LABELS[metric2]} of each dialect vs MSA, "
                                                 f"step {step}"), width="stretch")
st.caption("One line per dialect and model (dash = model). Similarity near 1 (or a small distance) means the "
           "model represents the dialect much like MSA at that layer; decoupling should lower similarity at and "
           "after the penalised layer.")
