"""The shipped experiment in the app: which experiment opens first, and the notice Home shows on a packed copy.

A packed copy (``experiment.pack``, normally ``cache/default``) is what a fresh clone opens on, so a reader can look
at a finished experiment at once; it is read-only, and the Run button reproduces it into a new folder
(``runner.default_folder``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ..experiment.layout import Experiment
from ..experiment.pack import base_changed
from . import runner


def first_choice(root: Path, dirs: list[str]) -> str:
    """The experiment the app opens on: the Run button's own folder when it exists (the reader's run), else the
    first experiment a run wrote here, else the shipped (packed) one."""
    target = str(runner.default_folder(root))
    if target in dirs:
        return target
    own = [d for d in dirs if not Experiment(d).pack_path.exists()]
    return own[0] if own else dirs[0]


def notice(view) -> None:
    """Near the top of Home, on a packed copy: it is shipped, when and on what it was made, how to reproduce it."""
    rec = view.exp.packed()
    if rec is None:
        return
    hw = rec.get("packed_on") or {}
    machine = hw.get("gpu") or hw.get("cpu") or "an unrecorded machine"
    base = rec.get("base") or {}
    made_from = (f"the shipped base (`data/base/`, built {base.get('created', '?')})" if base.get("shipped")
                 else "a base trained in the run")
    seeds = rec.get("seeds") or []
    rerun = runner.default_folder(view.root.parent) if runner.preset() == view.name else \
        view.root.with_name(f"{view.name}-rerun")
    st.info(
        f"**This is the shipped experiment**, not a run of this machine: a pruned, checked copy of the "
        f"`{rec.get('preset', view.name)}` experiment that comes with the project. It was run on "
        f"{(rec.get('run_created') or '?').replace('T', ' ')} (code {rec.get('run_code_version', '?')}) from "
        f"{made_from}, and packed on {rec.get('created', '?').replace('T', ' ')} on {machine} "
        f"({hw.get('cpu_count', '?')} cores, torch {hw.get('torch', '?')}). Every score and output of its "
        f"{len(seeds)} seed(s) is here; the pickers offer seed {rec.get('seed')}, and Translate has each arm's "
        f"final checkpoint.\n\n**To reproduce it**, press *Run* under **Experiments** below: it trains the same "
        f"experiment on this machine into `{rerun}`, never over this copy (`python -m explorer run --preset "
        f"{rec.get('preset', 'default')} --out {rerun}` does the same from a terminal).",
        icon=":material/inventory_2:")
    if base_changed(rec):
        st.warning("The shipped base (`data/base/`) has changed since this copy was made: its numbers describe the "
                   "old base. A run from the Run button uses the new one; the copy is rebuilt with "
                   "`python -m explorer pack` (README, \"The shipped experiment\").")
