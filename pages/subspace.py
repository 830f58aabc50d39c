"""Subspace: the estimated MSA directions over training, what the probe sees, and what they do to the geometry."""

import streamlit as st

from explorer.analysis import readings
from explorer.analysis.errors import first_of
from explorer.data.varieties import HR, variety_label
from explorer.ui import cache, exports, figures, links, shell, tables, widgets

shell.page_setup()
st.title("The MSA subspace over training")
exp = widgets.current_experiment() or widgets.no_experiment()
view = cache.view(exp)

probed = [a for a in view.arms if not cache.refits(exp, a).empty]
if not probed:
    st.info("This experiment has no arm with probe refits yet (the decoupled and random arms record them).")
    st.stop()
step = widgets.checkpoint_control(exp)
arm = links.bound(st.sidebar.selectbox, "Arm whose subspace to show", probed, key="sub_arm",
                  format_func=widgets.model_label,
                  index=probed.index(first_of(probed, "decoupled") or probed[0]))
site = widgets.site_picker(exp, "sub_site")
refits = cache.refits(exp, arm)
drawn = refits["accuracy"].isna().all()     # the random control draws its subspace, it fits no probe

st.subheader("What the probe gate decided")
widgets.reading(readings.gate_reading(refits))
if not drawn:
    tables.gate_table(refits, exports.file_name(view.name, "probe-gate", model=arm))
st.caption("At every refit the new probe must beat chance on held-out tokens by a margin (the gate threshold) and "
           "compress the labels; a rejected refit leaves the previous subspace in force, and before the first "
           "accepted one no penalty applies at all. The random control is redrawn at the decoupled arm's accepted "
           "refit steps.")

st.subheader("How the estimate moves")
if refits["step"].nunique() < 2:
    st.info(f"The {arm} arm has {refits['step'].nunique()} refit: there is no movement to draw yet.")
else:
    st.plotly_chart(cache.figure("angles", exp, arm), width="stretch",
                    config=figures.config(exports.file_name(view.name, "subspace-angles", model=arm)))
widgets.reading(readings.angles_reading(refits, drawn=drawn))
st.caption("Each point is one refit: the largest principal angle between the new subspace and the previous one (red) "
           "or the first one (blue). 0° is the same subspace, 90° an orthogonal one. In a good run the red curve "
           "falls and stays low (the model keeps MSA in one place, so the penalty pushes on a fixed direction); a "
           "curve near 90° means each refit found an unrelated direction, and the penalty chased it.")

st.subheader("What the probe sees")
if drawn:
    st.info(f"The {arm} arm draws a random subspace at each refit; it fits no probe.")
else:
    c1, c2 = st.columns([1, 2])
    metric = links.bound(c1.radio, "Probe metric", ["accuracy", "code_length_bits"], key="sub_metric",
                         horizontal=True,
                         format_func={"accuracy": "accuracy", "code_length_bits": "code length (bits)"}.get)
    per = cache.refit_varieties(exp, arm)
    options = [v for v in view.varieties if v in set(per["variety"])]
    default = options if len(options) <= 9 else [HR, *options[1:4]]
    shown = links.bound(c2.multiselect, "Varieties", options, default=default, key="sub_varieties",
                        format_func=variety_label)
    st.plotly_chart(cache.figure("probe", exp, arm, metric, tuple(shown)), width="stretch",
                    config=figures.config(exports.file_name(view.name, f"probe-{metric}", model=arm)))
    widgets.reading(readings.probe_reading(refits, per, cache.probe_chance_of(exp, arm)))
    st.caption("The thick line is the probe's accuracy on held-out tokens (MSA vs every dialect together); the dotted "
               "line is what always answering the larger class scores. A probe well above that line has found an "
               "MSA direction; one on it has found nothing to penalise. Per variety, the accuracy is the share of "
               "that variety's tokens put on the right side: a dialect below 0.5 is mostly taken for MSA. Code "
               "length: bits to transmit the labels with the probe; shorter means MSA is easier to read off.")

st.subheader("The penalty during training")
pens = cache.penalties(exp)
pen_arms = tuple(dict.fromkeys(sorted(pens["arm"], key=lambda a: (a != "decoupled", a != "random", a))))
if pens.empty:
    st.info("No decoupled or random arm has a training log yet.")
else:
    st.plotly_chart(cache.figure("penalties", exp, pen_arms), width="stretch",
                    config=figures.config(exports.file_name(view.name, "penalties")))
    widgets.reading(readings.penalty_reading(pens))
    st.caption("The penalty ‖Uᵀh‖² the loss adds at the penalised layer, one thin line per seed: the decoupled arm "
               "against its own MSA subspace, beside the matched random control (the same size of subspace, redrawn "
               "at the same steps). A gap means no subspace was in force yet; a jump is a refit or a redraw.")

widgets.require(exp, "represent", "geometry tables")
st.subheader("MSA-subspace energy per variety, over checkpoints")
reference = readings.reference_model(view.models, arm)
names = list(dict.fromkeys([reference, arm]))
heats = {name: cache.energy_heatmap(exp, name, site) for name in names}
zrange = figures.shared_range(list(heats.values())) or (float("nan"), float("nan"))
for col, (name, heat) in zip(st.columns(len(names)), heats.items()):
    with col:
        if not heat.notna().any().any():
            st.info(f"No MSA subspace at {site} for {name}: energy is measured at the penalised layer(s) only.")
        else:
            st.plotly_chart(cache.figure("energy", exp, name, site, *zrange), width="stretch",
                            key=f"heat_{name}",
                            config=figures.config(exports.file_name(view.name, "energy", model=name, layer=site)))
widgets.reading(readings.energy_reading(heats))
st.caption(f"Each cell is the average share of a variety's sentence vector inside the {arm} arm's current MSA "
           f"subspace (‖Uᵀh‖/‖h‖), left for the reference arm ({widgets.model_label(reference)}), right for the "
           "chosen one, on one colour scale. "
           "Decoupling works as intended when the dialect rows fade over training while the MSA row does not; if "
           "every row fades alike, MSA included, the penalty shrank the direction rather than separating dialects.")

st.subheader("Does the penalty remove MSA information, or only move it?")
models = tuple(view.arms)
st.plotly_chart(cache.figure("posthoc", exp, models, site), width="stretch",
                config=figures.config(exports.file_name(view.name, "posthoc", layer=site)))
widgets.reading(readings.posthoc_reading(cache.posthoc(exp), cache.geometry_long(exp), models, site))
st.caption("Left: how much of each model's sentence vectors lies in its own MSA subspace (for decoupled and random "
           "their training subspace, for the others a probe fitted on their states), what the penalty pushes down. "
           "Right: a fresh linear probe fitted after training on each checkpoint's states, MSA tokens against "
           "dialect tokens (held out by sentence; 0.5 = chance). The probe reads each sentence as a translation "
           "prompt reads its source, after its variety tag, like the training probe and the penalty; the sentence "
           "vectors on the left read the bare text. If the energy falls while the probe stays high, the "
           "penalty moved the mean away from the subspace but the MSA information is still there, readable along "
           "another direction.")

st.subheader("Distance to MSA, layer by layer")
geo = cache.geometry_long(exp)
if geo.empty:
    st.info("No geometry tables yet: they are written by the represent stage.")
    st.stop()
c1, c2 = st.columns(2)
dialect = links.bound(c1.selectbox, "Dialect", list(view.dialects), key="sub_dialect", format_func=variety_label)
metric2 = links.bound(c2.selectbox, "Measure", list(figures.GEOMETRY_LABELS), key="sub_geo_metric",
                      format_func=figures.GEOMETRY_LABELS.get)
models = tuple(view.models)
pick = geo[(geo["step"] == step) | (geo["model"] == "base")]   # the base model is the step-0 reference
st.plotly_chart(cache.figure("layers", exp, metric2, dialect, step, models), width="stretch",
                config=figures.config(exports.file_name(view.name, "distance-per-layer", step=step,
                                                        extra=[dialect, metric2])))
widgets.reading(readings.layers_reading(pick, metric2, figures.GEOMETRY_LABELS[metric2], dialect, step, models))
st.caption("One line per model for the chosen dialect at the chosen checkpoint (the base model before fine-tuning "
           "for reference). Similarity near 1, or a small distance, means the model represents the dialect much "
           "like MSA at that layer; decoupling should lower the similarity at and after the penalised layer, by "
           "more than the baseline's own movement.")
