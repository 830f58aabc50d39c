"""Every name the project composes and parses: model ids, arm kinds, λ of an arm, seed suffixes, display names.

The one owner of these spellings; every other module calls it (docs/design.md §4, "Names").

- An *arm* is what is trained: ``"baseline"``, ``"decoupled"``, ``"random"``, or a sweep arm
  ``"decoupled-lam<λ>"`` (``sweep_arm``: ``"decoupled-lam0.1"``).
- A *model* is one arm trained with one stage-2 seed, ``"<arm>.s<seed>"`` (``model_id``: ``"decoupled.s1"``), or
  ``"base"``, the model every arm starts from. Folders, caches, pickers and plot labels all use this string.
- For a reader a model is ``"decoupled · seed 1"`` (``model_display``), in pickers with its role
  (``model_label``: ``"base (before fine-tuning)"``).
"""

from __future__ import annotations

from collections.abc import Iterable

BASE = "base"
SEED_SEP = ".s"                     # "decoupled" + ".s" + "1"
SWEEP_PREFIX = "decoupled-lam"      # "decoupled-lam" + "0.1"
KINDS = ("baseline", "decoupled", "random")
ROLES = {"base": "before fine-tuning", "baseline": "plain fine-tuning", "decoupled": "probe + penalty",
         "random": "random-subspace control"}


def model_id(arm: str, seed: int) -> str:
    """The name of the model an arm trained with stage-2 seed ``seed``: ``model_id("decoupled", 1) == "decoupled.s1"``."""
    return f"{arm}{SEED_SEP}{seed}"


def _split(name: str) -> tuple[str, int] | None:
    arm, sep, seed = str(name).rpartition(SEED_SEP)
    return (arm, int(seed)) if sep and arm and seed.isdigit() else None


def parse_model(name: str) -> tuple[str, int | None]:
    """``"decoupled.s1"`` -> ("decoupled", 1); ``"base"`` -> ("base", None); anything else is refused."""
    if name == BASE:
        return BASE, None
    parts = _split(name)
    if parts is None:
        raise ValueError(f"{name!r} is not a model name: use 'base' or '<arm>.s<seed>', e.g. 'decoupled.s0'")
    return parts


def arm_of(name: str) -> str:
    """The arm of a model (``"decoupled.s1"`` -> ``"decoupled"``); any other name (``"base"``, ``"reference"``, an
    arm) as it is."""
    parts = _split(name)
    return parts[0] if parts else name


def seed_of(name: str) -> int | None:
    """The stage-2 seed of a model (``"decoupled.s1"`` -> 1); None for any other name."""
    parts = _split(name)
    return parts[1] if parts else None


def sweep_arm(lam: float) -> str:
    """The name of the decoupled arm trained at λ = ``lam`` in a sweep, e.g. ``decoupled-lam0.1``."""
    return f"{SWEEP_PREFIX}{lam:g}"


def is_sweep_arm(arm: str) -> bool:
    return arm.startswith(SWEEP_PREFIX)


def arm_lam(arm: str, lam: float) -> float:
    """λ of an arm: the sweep value for a sweep arm (``"decoupled-lam0.1"`` -> 0.1), else ``lam`` (the run's λ)."""
    return float(arm.removeprefix(SWEEP_PREFIX)) if is_sweep_arm(arm) else lam


def arm_kind(arm: str) -> str:
    """"baseline", "decoupled" (any λ) or "random": what an arm does."""
    return "decoupled" if arm.startswith("decoupled") else arm


def first_of(models: Iterable[str], arm: str) -> str | None:
    """The first model of ``arm`` among ``models`` ("decoupled" -> "decoupled.s0"; a full model name as is)."""
    return next((m for m in models if m == arm or (_split(m) or ("",))[0] == arm), None)


def model_display(name: str) -> str:
    """How a model is named to a reader: "decoupled · seed 1" for "decoupled.s1"; any other name as it is."""
    parts = _split(name)
    return f"{parts[0]} · seed {parts[1]}" if parts else name


def model_label(name: str) -> str:
    """'decoupled · seed 1' for "decoupled.s1", 'decoupled (probe + penalty)' for an arm, 'base (before
    fine-tuning)': the one way a model is named in pickers and headings, whatever models the experiment has."""
    if model_display(name) != name:
        return model_display(name)
    role = ROLES.get(name) or next((v for k, v in ROLES.items() if name.startswith(f"{k}-")), None)
    return f"{name} ({role})" if role else name
