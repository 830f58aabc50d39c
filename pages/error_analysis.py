"""Error analysis: every test translation (filters kept in the URL), one sentence with every model's output,
notes per output with marked spans, and exports with the page's column names."""

import math

import pandas as pd
import streamlit as st

from explorer.analysis import errors
from explorer.analysis.readings import errors_reading
from explorer.data.varieties import HR, variety_label
from explorer.experiment.annotations import item_key
from explorer.names import first_of
from explorer.ui import cache, exports, links, notes, shell, tables, widgets

ROWS_PER_PAGE = 20
shell.page_setup()
st.title("Error analysis")
exp = widgets.current_experiment() or widgets.no_experiment()
view = cache.view(exp)
table = cache.error_table(exp)
if table.empty:
    st.info("This experiment has no test translations yet.")
    st.stop()
models = [m for m in view.models if f"hyp_{m}" in table.columns]
annotations, notes_error = notes.load(exp)

# ---- filters: every one is kept in the URL, so a reload keeps the view and a link shares it
with st.container(border=True):
    f1, f2, f3 = st.columns([2, 2, 3])
    names = dict(zip(table["direction"], table["label"]))
    directions = links.bound(f1.multiselect, "Direction", list(names), key="ea_dirs", format_func=names.get)
    varieties = links.bound(f2.multiselect, "Variety", list(dict.fromkeys(table["variety"])), key="ea_vars",
                            format_func=variety_label)
    search = links.bound(f3.text_input, "Search the texts", key="ea_search",
                         placeholder="a word of the source, the reference or an output")
    # the Δ compares what the reader picks: any two models (seeds) or an arm's mean over its seeds
    sides = errors.delta_sides(models)
    d1, d2 = st.columns(2)
    default = errors.delta_pair(sides, "decoupled") or (sides[-1], sides[0])
    system = links.bound(d1.selectbox, "Δ of", sides, index=sides.index(default[0]), key="ea_sys",
                         format_func=lambda m: errors.side_label(m, models),
                         help="A model (one seed) or an arm: the mean of its seeds' chrF++ on each sentence")
    reference = links.bound(d2.selectbox, "minus", sides, index=sides.index(default[1]), key="ea_ref",
                            format_func=lambda m: errors.side_label(m, models))
    pair = (system, reference)
    table = errors.with_delta(table, system, reference)
    labels = errors.column_labels(models, pair)
    g1, g2, g3, g4 = st.columns([3, 3, 2, 1], vertical_alignment="bottom")
    # one range for every pair, so a link's range stays valid whatever Δ it names
    chrf = table[[f"chrf_{m}" for m in models]]
    spread = float(math.ceil(max(0.1, (chrf.max(axis=1) - chrf.min(axis=1)).max()))) if chrf.notna().any().any() \
        else None
    rng = links.bound(g1.slider, "Δ between", -spread, spread, (-spread, spread), step=0.5, key="ea_delta",
                      help="Keeps the sentences whose Δ (chosen above) lies in this range") if spread else None
    flags = links.bound(g2.multiselect, "Only flagged", [*errors.OUTPUT_FLAGS, errors.PAIR_SAME], key="ea_flags",
                        help="Outputs flagged automatically (any model), or test pairs whose source is the same text "
                             "as the reference")
    sort_cols = ["abs_delta", "delta", "differ", "length", *[f"chrf_{m}" for m in models],
                 *[f"copy_{m}" for m in models], "sent_id"]
    short = {"abs_delta": "|Δ| (largest first when descending)", "delta": "Δ", "differ": "outputs differ"}
    sort_by = links.bound(g3.selectbox, "Sort by", sort_cols, key="ea_sort",
                          format_func=lambda c: short.get(c) or labels[c])
    ascending = links.bound(g4.toggle, "Ascending", value=False, key="ea_asc")
shown = errors.filter_table(table, directions=directions, varieties=varieties, delta_range=rng, search=search,
                            flags=flags).sort_values(sort_by, ascending=ascending, kind="stable")
widgets.reading(errors_reading(shown, len(table), models, tuple(errors.side_label(m, models) for m in pair)))

flat = annotations.flat() if annotations is not None else None
filtered = len(shown) < len(table)
scopes = {"filtered view": (shown, f"filtered view: {len(shown)} of {len(table)} translations"),
          "everything": (table, f"everything: {len(table)} translations")}
with st.container(horizontal=True):
    for scope, fmt in [(s, f) for s in scopes for f in ("csv", "jsonl")]:
        rows, what = scopes[scope]

        def data(rows=rows, what=what, fmt=fmt) -> bytes:   # built only when clicked
            frame = errors.export_frame(rows, models, scope=what, notes=flat, delta_of=pair)
            return errors.to_csv(frame) if fmt == "csv" else errors.to_jsonl(frame)

        st.download_button(f"{fmt.upper()} · {scope} ({len(rows)})", data, key=f"ea_export_{scope[:3]}_{fmt}",
                           file_name=exports.file_name(view.name, "translations", extra=[scope.split()[0], "delta",
                                                                          system, "minus", reference], ext=fmt),
                           on_click="ignore",
                           mime="text/csv" if fmt == "csv" else "application/jsonl", icon=":material/download:",
                           disabled=scope == "filtered view" and rows.empty)
st.caption("Exports use the column names of this page, with the linguist's tags, comments and spans; their first "
           "column says whether the file is the filtered view or everything." +
           ("" if filtered else " No filter is set: both hold every translation."))
if shown.empty:
    st.info("No translation matches these filters. Clear the search or widen the filters above (they are also in "
            "the page's address).")
    st.stop()

# ---- the table, a page at a time, every cell wrapping (no truncated Arabic)
shown_first = [m for m in (first_of(models, "baseline"), first_of(models, "decoupled")) if m]
in_table = links.bound(st.multiselect, "Outputs shown in the table", models, default=shown_first or models[:2],
                       key="ea_cols", format_func=widgets.model_label)
n_pages = max(1, math.ceil(len(shown) / ROWS_PER_PAGE))
page_no = links.bound(st.pagination, n_pages, key="ea_page") if n_pages > 1 else 1
page_no = min(page_no, n_pages)
rows = shown.iloc[(page_no - 1) * ROWS_PER_PAGE: page_no * ROWS_PER_PAGE]
tables.translations_table(rows, in_table, labels)
st.caption(f"Rows {(page_no - 1) * ROWS_PER_PAGE + 1}–{(page_no - 1) * ROWS_PER_PAGE + len(rows)} of {len(shown)}. "
           "Flags are set automatically: an empty output, one that repeats itself, a near-copy of the source "
           f"(≥{errors.NEAR_COPY:.0%} of its words from the source, covering as much of it), one far too long or "
           "short, and test pairs whose source is the reference.")

# ---- one sentence, every output
st.header("One sentence, every output")
keys = [item_key(d, s) for d, s in zip(shown["direction"], shown["sent_id"])]
names = dict(zip(keys, [f"{lbl} · {sid}" for lbl, sid in zip(shown["label"], shown["sent_id"])]))
key = links.bound(st.selectbox, "Sentence (in the order of the table)", keys, key="ea_item",
                  format_func=names.get)
row = shown.iloc[keys.index(key)].to_dict()
if row["pair_flags"]:
    st.warning(f"Suspicious test pair: {row['pair_flags']}. The source already is the reference, so copying it "
               "scores 100 and this sentence says nothing about translation.")
widgets.sentence(row["source"], row["src"], label=f"Source · {variety_label(row['src'])} · {row['sent_id']}")
msa = cache.test_sentences(exp).set_index("sent_id").get(HR, {}).get(row["sent_id"]) \
    if HR not in (row["src"], row["tgt"]) else None
if isinstance(msa, str) and msa:
    widgets.sentence(msa, HR, label="The same sentence in MSA")
diff = links.bound(st.toggle, "Word diff against the reference", key="ea_diff",
                   help="Marks, in each output, the words the reference does not have there (yellow), and, in the "
                        "reference below it, the words that output lacks (blue). The two texts are never mixed.")
widgets.sentence(row["ref"], row["tgt"], label=f"Reference · {variety_label(row['tgt'])}")
sentence_note = annotations.note(key) if annotations else None
if sentence_note and not sentence_note.empty:
    st.caption(f"Note on the sentence: {', '.join(sentence_note.tags)} {sentence_note.comment}".strip())
for m in models:
    hyp = str(row[f"hyp_{m}"] or "")
    label, top = row.get(f"guess_{m}"), row.get(f"top_{m}")
    looks = (f"looks like {variety_label(label)}" if label else str(row.get(f"why_{m}") or "no dialect guess")) \
        + (f" · top three: {top}" if top else "")
    copied = row[f"copy_{m}"]
    meta = (f"{widgets.model_label(m)} · chrF++ {row[f'chrf_{m}']:.1f} · "
            f"{f'{copied:.0%}' if pd.notna(copied) else '—'} of its words copied from the source · {looks}")
    out_note = annotations.output(key, m) if annotations else None
    if out_note and not out_note.empty:
        meta += f" · your tags: {', '.join(out_note.tags) or '—'}"
    body = errors.word_diff_html(hyp, row["ref"]) if diff else None
    widgets.sentence(hyp, row["tgt"], label=meta, cls="dde-output",
                     label_html=" " + widgets.flags_html(row[f"flags_{m}"]),
                     body_html=body[0] if body else notes.marked_html(hyp, annotations, key, m))
    if diff and hyp:
        widgets.sentence(row["ref"], row["tgt"], label=f"reference: words {widgets.model_label(m)} lacks", size="0.95rem",
                         body_html=body[1])
st.caption(f"Every model's output in full, as plain right-to-left text you can select and copy. The dialect "
           "classifier (character n-grams) always picks some variety, so each output shows its three likeliest with "
           f"their probabilities, and names one only when it is at least {errors.CONFIDENT:.0%} sure, the output is "
           "not garbled (repeats itself, cut short, or mostly words found in no training text) and the "
           "MSA-vs-dialect classifier does not call it MSA.")

notes.panel(exp, key, {m: str(row[f"hyp_{m}"] or "") for m in models}, annotations, notes_error,
            label=widgets.model_label)
