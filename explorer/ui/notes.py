"""The linguist's notes panel: tags, a comment and marked spans per model output (and a note on the sentence),
kept in the experiment folder.

The page reads the notes once (``load``, cached by the file's modification time) to show them in its table and
exports, and draws the panel for the chosen example (``panel``); the annotation store's whole life cycle (load,
save, mark spans, edit the tag list, move a damaged file aside) happens here, so the page stays widgets, one
call, draw.
"""

from __future__ import annotations

import html

import streamlit as st

from ..experiment.annotations import Annotations, AnnotationsError, AnnotationStore
from . import cache

SENTENCE = "the sentence"


def store(exp: str) -> AnnotationStore:
    return AnnotationStore(cache.view(exp).root)


def load(exp: str) -> tuple[Annotations | None, str | None]:
    """(the annotations, None), or (None, what is wrong with the file) when it cannot be read."""
    s = store(exp)
    try:
        return cache.annotations(str(cache.view(exp).root), s.stamp()), None
    except AnnotationsError as e:
        return None, str(e)


def marked_html(text: str, notes: Annotations | None, key: str, model: str) -> str | None:
    """The output with its marked spans highlighted (title = tag), or None when it has none that still match."""
    if notes is None:
        return None
    spans = [s for s in notes.output(key, model).spans if text[s.start:s.end] == s.text]
    if not spans:
        return None
    out, at = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        if s.start < at:
            continue     # overlapping spans: the first one wins in the display
        out += [html.escape(text[at:s.start]),
                f'<mark class="dde-span" title="{html.escape(s.tag)}">{html.escape(text[s.start:s.end])}</mark>']
        at = s.end
    out.append(html.escape(text[at:]))
    return "".join(out)


def panel(exp: str, key: str, outputs: dict[str, str], notes: Annotations | None, error: str | None,
          label=str) -> None:
    """Tags and comment on the sentence or on one model's output (``outputs``: model -> text), spans on an
    output, Save, the editable tag list and, for a damaged file, the offer to move it aside (it is kept, renamed)."""
    s = store(exp)
    with st.container(border=True):
        st.markdown("**Your notes** (saved in the experiment folder)")
        if error:
            st.error(error)
            sure = st.checkbox("I understand: move the damaged file aside (it is kept, renamed) and start a new one",
                               key="ea_sure")
            if st.button("Move it aside", key="ea_quarantine", disabled=not sure):
                moved = s.quarantine()
                st.toast(f"Moved to {moved.name}" if moved else "There was no file")
                st.rerun()
        targets = [*outputs, SENTENCE]
        target = st.segmented_control("About", targets, key="ea_target", required=True, default=targets[0],
                                      format_func=lambda t: t if t == SENTENCE else f"output of {label(t)}")
        model = None if target == SENTENCE else target
        note = (notes.note(key) if model is None else notes.output(key, model)) if notes else None
        slot = f"{key}|{target}"
        tags = st.multiselect("Tags", list(notes.tags) if notes else [], default=list(note.tags) if note else [],
                              key=f"ea_tags_{slot}", disabled=error is not None)
        comment = st.text_area("Comment", value=note.comment if note else "", key=f"ea_comment_{slot}",
                               disabled=error is not None, height=80)
        if st.button("Save note", key="ea_save", disabled=error is not None, type="primary"):
            try:
                s.save_note(key, tags, comment, model=model)
                st.toast("Saved")
                st.rerun()          # the table's tags and comment columns show it at once
            except (ValueError, OSError) as e:
                st.error(f"Not saved: {e}")
        if model is not None:
            _spans(s, key, model, outputs[model], notes, error)
        with st.expander("Edit the tag list"):
            tag_text = st.text_area("One tag per line", "\n".join(notes.tags) if notes else "", key="ea_taglist",
                                    disabled=error is not None)
            if st.button("Save tag list", key="ea_save_tags", disabled=error is not None):
                try:
                    s.save_tags(tag_text.splitlines())
                    st.rerun()
                except (ValueError, OSError) as e:
                    st.error(f"Not saved: {e}")
        if notes and notes.items:
            st.caption(f"{len(notes.items)} example(s) annotated in this experiment.")


def _spans(s: AnnotationStore, key: str, model: str, output: str, notes: Annotations | None,
           error: str | None) -> None:
    st.markdown("**Marked spans** of this output (optional)")
    for i, sp in enumerate(notes.output(key, model).spans if notes else ()):
        c1, c2 = st.columns([5, 1])
        stale = "" if output[sp.start:sp.end] == sp.text else " (the output has changed since)"
        c1.markdown(f'<span dir="auto">{html.escape(sp.text)}</span> · {html.escape(sp.tag)} · characters '
                    f"{sp.start}–{sp.end}{stale}", unsafe_allow_html=True)
        if c2.button("Remove", key=f"ea_span_rm_{i}", disabled=error is not None):
            s.remove_span(key, model, sp.start, sp.end)
            st.rerun()
    c1, c2, c3 = st.columns([4, 2, 1], vertical_alignment="bottom")
    text = c1.text_input("Words to mark (copy them from the output)", key=f"ea_span_text_{key}|{model}",
                         disabled=error is not None)
    tag = c2.selectbox("Tag", list(notes.tags) if notes else [], key="ea_span_tag", disabled=error is not None)
    if c3.button("Mark", key="ea_span_add", disabled=error is not None or not notes):
        try:
            s.add_span(key, model, output, text, tag)
            st.rerun()
        except (ValueError, OSError) as e:
            st.error(f"Not marked: {e}")
