"""Error analysis: every test translation, filters, a character diff, tags and comments, CSV export."""

import streamlit as st

from explorer.annotations import AnnotationsError, AnnotationStore, item_key
from explorer.error_analysis import char_diff_html, diff_ratio, filter_table
from explorer.ui import cache, widgets

st.title("Error analysis")
exp = widgets.current_experiment() or widgets.no_experiment()
view = cache.view(exp)
table = cache.error_table(exp)
if table.empty:
    st.info("This experiment has no test translations yet.")
    st.stop()
models = [m for m in view.models if f"hyp_{m}" in table.columns]
store = AnnotationStore(view.root)
try:
    notes, notes_error = store.load(), None
except AnnotationsError as e:
    notes, notes_error = None, str(e)

# ---- filters and sorting
with st.container(border=True):
    f1, f2, f3 = st.columns([2, 2, 3])
    labels = dict(zip(table["direction"], table["label"]))
    directions = f1.multiselect("Direction", sorted(labels, key=list(labels).index), key="ea_dirs",
                                format_func=labels.get)
    varieties = f2.multiselect("Variety", sorted(table["variety"].unique(), key=list(table["variety"]).index),
                               key="ea_vars", format_func=widgets.variety_name)
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
if notes is not None:   # the linguist's notes travel with the table (and the CSV)
    keys = [item_key(d, s) for d, s in zip(shown["direction"], shown["sent_id"])]
    shown = shown.assign(tags=[", ".join(notes.note(k).tags) for k in keys],
                         comment=[notes.note(k).comment for k in keys])

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
ma = a.selectbox("Output A", models, index=models.index("baseline") if "baseline" in models else 0, key="ea_a")
mb = b.selectbox("Output B", models, index=models.index("decoupled") if "decoupled" in models else 0, key="ea_b")
for col, m in ((a, ma), (b, mb)):
    with col:
        direction = "rtl" if row["tgt"] != "eng" else "ltr"
        st.markdown(f'<div class="dde-diff" dir="{direction}" style="font-size:1.15rem;line-height:2;padding:0.4rem '
                    f'0.7rem;background:#fafafa;border-radius:4px">{char_diff_html(row[f"hyp_{m}"], row["ref"])}'
                    "</div>", unsafe_allow_html=True)
        st.caption(f"{m}: chrF++ {row[f'chrf_{m}']:.1f} · {diff_ratio(row[f'hyp_{m}'], row['ref']):.0%} of characters "
                   f"match · looks like {row.get(f'pred_{m}', '—')}")
st.caption("How to read the diff: green characters are in the output but not the reference, red struck-through "
           "ones are in the reference but missing from the output; plain text matches.")

error = notes_error
with st.container(border=True):
    st.markdown("**Your notes on this example** (saved in the experiment folder)")
    if error:
        st.error(error)
        sure = st.checkbox("I understand: move the damaged file aside (it is kept, renamed) and start a new one",
                           key="ea_sure")
        if st.button("Move it aside", key="ea_quarantine", disabled=not sure):
            moved = store.quarantine()
            st.toast(f"Moved to {moved.name}" if moved else "There was no file")
            st.rerun()
    note = notes.note(key) if notes else None
    tags = st.multiselect("Tags", list(notes.tags) if notes else [], default=list(note.tags) if note else [],
                          key=f"ea_tags_{key}", disabled=error is not None)
    comment = st.text_area("Comment", value=note.comment if note else "", key=f"ea_comment_{key}",
                           disabled=error is not None, height=80)
    if st.button("Save note", key="ea_save", disabled=error is not None, type="primary"):
        try:
            store.save_note(key, tags, comment)
            st.toast("Saved")
            st.rerun()          # the table's tags and comment columns show it at once
        except (ValueError, OSError) as e:
            st.error(f"Not saved: {e}")
    with st.expander("Edit the tag list"):
        tag_text = st.text_area("One tag per line", "\n".join(notes.tags) if notes else "", key="ea_taglist",
                                disabled=error is not None)
        if st.button("Save tag list", key="ea_save_tags", disabled=error is not None):
            try:
                store.save_tags(tag_text.splitlines())
                st.rerun()
            except (ValueError, OSError) as e:
                st.error(f"Not saved: {e}")
    if notes and notes.items:
        st.caption(f"{len(notes.items)} example(s) annotated in this experiment.")
