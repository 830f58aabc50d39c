"""The linguist's notes panel: tags and a comment per test example, kept in the experiment folder.

The page reads the notes once (``load``) to show them in its table, and draws the panel for the chosen example
(``panel``); the annotation store's whole life cycle (load, save, edit the tag list, move a damaged file aside)
happens here, so the page stays widgets, one call, draw.
"""

from __future__ import annotations

import streamlit as st

from ..experiment.annotations import Annotations, AnnotationsError, AnnotationStore
from . import cache


def store(exp: str) -> AnnotationStore:
    return AnnotationStore(cache.view(exp).root)


def load(exp: str) -> tuple[Annotations | None, str | None]:
    """(the annotations, None), or (None, what is wrong with the file) when it cannot be read."""
    try:
        return store(exp).load(), None
    except AnnotationsError as e:
        return None, str(e)


def panel(exp: str, key: str, notes: Annotations | None, error: str | None) -> None:
    """Tags and comment of the example ``key``, with Save, the editable tag list and, for a damaged file, the
    offer to move it aside (it is kept, renamed)."""
    s = store(exp)
    with st.container(border=True):
        st.markdown("**Your notes on this example** (saved in the experiment folder)")
        if error:
            st.error(error)
            sure = st.checkbox("I understand: move the damaged file aside (it is kept, renamed) and start a new one",
                               key="ea_sure")
            if st.button("Move it aside", key="ea_quarantine", disabled=not sure):
                moved = s.quarantine()
                st.toast(f"Moved to {moved.name}" if moved else "There was no file")
                st.rerun()
        note = notes.note(key) if notes else None
        tags = st.multiselect("Tags", list(notes.tags) if notes else [], default=list(note.tags) if note else [],
                              key=f"ea_tags_{key}", disabled=error is not None)
        comment = st.text_area("Comment", value=note.comment if note else "", key=f"ea_comment_{key}",
                               disabled=error is not None, height=80)
        if st.button("Save note", key="ea_save", disabled=error is not None, type="primary"):
            try:
                s.save_note(key, tags, comment)
                st.toast("Saved")
                st.rerun()          # the table's tags and comment columns show it at once
            except (ValueError, OSError) as e:
                st.error(f"Not saved: {e}")
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
