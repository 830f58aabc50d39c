"""Error analysis: every test translation, filters, a character diff, tags and comments, CSV export."""

import streamlit as st

from explorer.analysis.errors import char_diff_html, diff_ratio, filter_table, first_of
from explorer.data.varieties import variety_label
from explorer.experiment.annotations import item_key
from explorer.ui import cache, notes, shell, widgets

shell.page_setup()   # first: a page opened before any other still gets the app's frame

st.title("Error analysis")
exp = widgets.current_experiment() or widgets.no_experiment()
view = cache.view(exp)
table = cache.error_table(exp)
if table.empty:
    st.info("This experiment has no test translations yet.")
    st.stop()
models = [m for m in view.models if f"hyp_{m}" in table.columns]
annotations, notes_error = notes.load(exp)

# ---- filters and sorting
with st.container(border=True):
    f1, f2, f3 = st.columns([2, 2, 3])
    labels = dict(zip(table["direction"], table["label"]))
    directions = f1.multiselect("Direction", sorted(labels, key=list(labels).index), key="ea_dirs",
                                format_func=labels.get)
    varieties = f2.multiselect("Variety", sorted(table["variety"].unique(), key=list(table["variety"]).index),
                               key="ea_vars", format_func=variety_label)
    search = f3.text_input("Search the texts", key="ea_search", placeholder="a word in the source, reference or an output")
    lo, hi = float(table["delta"].min()), float(table["delta"].max())
    g1, g2, g3 = st.columns([3, 2, 1])
    rng = g1.slider("Δ chrF++ (decoupled − baseline)", min(lo, -0.1), max(hi, 0.1), (min(lo, -0.1), max(hi, 0.1)),
                    key="ea_delta") if table["delta"].notna().any() else None
    sort_cols = ["delta", "length", *[f"chrf_{m}" for m in models], "sent_id"]
    sort_by = g2.selectbox("Sort by", sort_cols, key="ea_sort")
    ascending = g3.toggle("Ascending", value=True, key="ea_asc")
shown = filter_table(table, directions=directions, varieties=varieties, delta_range=rng, search=search)
shown = shown.sort_values(sort_by, ascending=ascending, kind="stable")
if annotations is not None:   # the linguist's notes travel with the table (and the CSV)
    keys = [item_key(d, s) for d, s in zip(shown["direction"], shown["sent_id"])]
    shown = shown.assign(tags=[", ".join(annotations.note(k).tags) for k in keys],
                         comment=[annotations.note(k).comment for k in keys])

cols = ["variety", "label", "sent_id", "source", "ref", *[f"hyp_{m}" for m in models],
        *[f"chrf_{m}" for m in models], "delta", "length", *[f"pred_{m}" for m in models if f"pred_{m}" in shown],
        *[c for c in ("tags", "comment") if c in shown]]
config = {"label": "direction", "ref": "reference", "delta": st.column_config.NumberColumn("Δ", format="%+.1f")}
config |= {f"hyp_{m}": f"output {m}" for m in models}
config |= {f"chrf_{m}": st.column_config.NumberColumn(f"chrF++ {m}", format="%.1f") for m in models}
config |= {f"pred_{m}": f"looks like ({m})" for m in models}
st.dataframe(shown[cols], hide_index=True, width="stretch", height=360, column_config=config)
c1, c2 = st.columns([3, 1])
c1.caption(f"{len(shown)} of {len(table)} translations. Δ is the sentence chrF++ of decoupled minus baseline; "
           "'looks like' is the dialect classifier's guess for each output. Click a column header to sort too.")
c2.download_button("Download CSV", shown[cols].to_csv(index=False).encode("utf-8-sig"), key="ea_csv",
                   file_name=f"{view.name}-translations.csv", mime="text/csv", icon=":material/download:")
if shown.empty:
    st.stop()

# ---- one example: diff and notes
st.subheader("One example")
keys = [item_key(d, s) for d, s in zip(shown["direction"], shown["sent_id"])]
rows = dict(zip(keys, shown.to_dict("records")))
key = st.selectbox("Example", keys, key="ea_example",
                   format_func=lambda k: f"{rows[k]['label']} · {rows[k]['sent_id']} · Δ {rows[k]['delta']:+.1f}")
row = rows[key]
widgets.sentence(row["source"], row["src"], label="Source")
widgets.sentence(row["ref"], row["tgt"], label="Reference")
a, b = st.columns(2)
ma = a.selectbox("Output A", models, index=models.index(first_of(models, "baseline") or models[0]), key="ea_a")
mb = b.selectbox("Output B", models, index=models.index(first_of(models, "decoupled") or models[0]), key="ea_b")
for col, m in ((a, ma), (b, mb)):
    with col:
        widgets.diff_box(char_diff_html(row[f"hyp_{m}"], row["ref"]), row["tgt"])
        st.caption(f"{m}: chrF++ {row[f'chrf_{m}']:.1f} · {diff_ratio(row[f'hyp_{m}'], row['ref']):.0%} of characters "
                   f"match · looks like {row.get(f'pred_{m}', '—')}")
st.caption("How to read the diff: green characters are in the output but not the reference, red struck-through "
           "ones are in the reference but missing from the output; plain text matches.")

notes.panel(exp, key, annotations, notes_error)
