"""The base model that ships with the project (``data/base/``): the ``default`` preset starts from it.

It was trained by the project's own command (``python -m explorer base``, see ``experiment.basebuild``) on the
embedded corpora only, far longer than a run can afford, and is stored as fp16 safetensors with its tokenizer, a
model card (``MODEL_CARD.md``) and ``card.json``: the command, seed, code version, hardware, training time, its
scores, the FLORES split it was trained against, and the SHA-256 of every file. ``verify`` checks those hashes
before the model is used, so a damaged or replaced file is reported, never silently trained on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..version import REPO_ROOT
from .errors import ModelLoadError

SHIPPED_BASE = REPO_ROOT / "data" / "base"
CARD = "card.json"


def file_hashes(folder: Path, names: list[str]) -> dict[str, str]:
    """name -> SHA-256 of each file (the card's record)."""
    out = {}
    for name in names:
        h = hashlib.sha256()
        with open(folder / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        out[name] = h.hexdigest()
    return out


def read_card(folder: Path = SHIPPED_BASE) -> dict:
    path = Path(folder) / CARD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(
            f"{folder} holds no shipped base model ({CARD} is missing). Restore data/base/ from the repository, "
            "rebuild it with `python -m explorer base`, or train a base in the run with --base-steps N.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path} is damaged ({e}); restore it from the repository.") from None


def verify(folder: Path = SHIPPED_BASE) -> dict:
    """The card of the base in ``folder`` after checking every file against the SHA-256 it records; ModelLoadError
    naming the file and what to do when one is missing or differs."""
    folder = Path(folder)
    card = read_card(folder)
    want = card.get("files") or {}
    if not want:
        raise ModelLoadError(f"{folder / CARD} lists no files to check; rebuild the base with `python -m explorer base`.")
    for name, digest in want.items():
        if not (folder / name).is_file():
            raise ModelLoadError(f"{folder / name} is missing from the shipped base; restore data/base/ from the "
                                 "repository (git checkout -- data/base) or rebuild it with `python -m explorer base`.")
        got = file_hashes(folder, [name])[name]
        if got != digest:
            raise ModelLoadError(f"{folder / name} does not match the checksum in {CARD} (damaged or replaced); "
                                 "restore data/base/ from the repository (git checkout -- data/base) or rebuild it "
                                 "with `python -m explorer base`.")
    return card
