"""The command line's view of ``RunConfig``: one ``--option`` per field (with its help, range and each preset's
value), the parsers of list and boolean values (which refuse what ``RunConfig.validate`` would refuse, with advice
that is accepted), and the overrides a parsed command line gives ``config.preset_config``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from .config import PRESETS, RunConfig


class SeedsError(argparse.ArgumentTypeError, ValueError):
    """A --seeds value that is neither a count nor a list (argparse shows its message as it is)."""


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"3"`` -> (0, 1, 2) (that many seeds); ``"0,5,7"`` -> those seeds (``"5,"`` is the single seed 5).

    Refused, with a value that is accepted as advice: an empty item (``1,,2``), a seed named twice, a negative
    seed or count."""
    text = text.strip()
    hint = "--seeds takes a count (e.g. 3 for seeds 0,1,2) or a list (e.g. 0,5,7; a single seed 5 is written 5,)"
    if "," not in text:
        try:
            n = int(text)
        except ValueError:
            raise SeedsError(f"{hint}; got {text!r}") from None
        if n < 1:
            fix = f"for the one seed {n} write {n}," if n == 0 else "e.g. --seeds 1 (the one seed 0) or --seeds 0,"
            raise SeedsError(f"{hint}; got {text!r}: a count of seeds is at least 1 ({fix})")
        return tuple(range(n))
    items = [x.strip() for x in text.split(",")]
    if len(items) == 2 and items[0] and not items[1]:
        items = items[:1]                                   # "5,": the one seed 5
    try:
        values = [int(x) for x in items if x]
    except ValueError:
        raise SeedsError(f"{hint}; got {text!r}") from None
    clean = list(dict.fromkeys(v for v in values if v >= 0))
    fix = (",".join(map(str, clean)) + ("," if len(clean) == 1 else "")) if clean else "0,"
    if not all(items):
        raise SeedsError(f"{hint}; got {text!r}: it has an empty item; write --seeds {fix}")
    if any(v < 0 for v in values):
        raise SeedsError(f"{hint}; got {text!r}: seeds are numbers ≥ 0; write --seeds {fix}")
    if len(set(values)) != len(values):
        raise SeedsError(f"{hint}; got {text!r}: seeds are distinct, each named once; write --seeds {fix}")
    return tuple(values)


def _list_parser(flag: str) -> Callable[[str], tuple[str, ...]]:
    """The parser of a comma-separated option: ``''`` is the empty list; an empty item or a name given twice is
    refused with the list that is meant."""
    def parse(text: str) -> tuple[str, ...]:
        if not text.strip():
            return ()
        items = [x.strip() for x in text.split(",")]
        clean = list(dict.fromkeys(x for x in items if x))
        if not all(items):
            raise argparse.ArgumentTypeError(f"{flag} {text!r} has an empty item; write {flag} {','.join(clean)}")
        if len(clean) != len(items):
            raise argparse.ArgumentTypeError(f"{flag} {text!r} names an item twice; write {flag} "
                                             f"{','.join(clean)}")
        return tuple(items)
    return parse


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _precision(text: str) -> str:
    """``--bf16``: auto, or a boolean spelled any way ``_bool`` accepts."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return "true" if _bool(text) else "false"
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto, true or false, got {text!r}") from None


def _preset_values(name: str, default: Any) -> str:
    """What each preset sets an option to, for ``--help``: "all presets: 0.01" or "default: 200, tiny: 16, ..."."""
    def show(v: Any) -> str:
        if isinstance(v, tuple):
            return ",".join(str(x) for x in v) or "(empty)"
        return "(empty)" if v == "" else str(v).lower() if isinstance(v, bool) else str(v)
    values = {p: show(PRESETS[p].get(name, default)) for p in PRESETS}
    if len(set(values.values())) == 1:
        return f"all presets: {next(iter(values.values()))}"
    return ", ".join(f"{p}: {v}" for p, v in values.items())


def add_config_options(parser) -> None:
    """Add one ``--option`` per RunConfig field (default None = keep the preset's value); its help says what it
    means, its unit or choices, and each preset's value."""
    for f in fields(RunConfig):
        if f.name == "preset":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        m = f.metadata
        rng = ", ".join(f"{k} {m[k]}" for k in ("min", "above", "max", "below") if k in m)
        text = (m.get("help", "") + (f" ({rng})" if rng else "")
                + f" [{_preset_values(f.name, default)}]").replace("%", "%%")
        kw: dict[str, Any] = {"dest": f.name, "default": None, "help": text}
        if isinstance(default, bool):
            parser.add_argument(flag, type=_bool, metavar="true|false", **kw)
        elif f.name == "bf16":
            parser.add_argument(flag, type=_precision, metavar="auto|true|false", **kw)
        elif f.name == "seeds":
            parser.add_argument(flag, type=parse_seeds, metavar="N|A,B,...", **kw)
        elif f.name == "sweep":
            parser.add_argument(flag, metavar="LAM,LAM,...", type=_float_list, **kw)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=_list_parser(flag), metavar="A,B,...", **kw)
        elif "choices" in m:
            parser.add_argument(flag, type=str, metavar="{" + ",".join(m["choices"]) + "}", **kw)
        else:
            parser.add_argument(flag, type=type(default), metavar=type(default).__name__.upper(), **kw)


def _float_list(text: str) -> tuple[float | None, ...]:
    """``--sweep``: λ values separated by commas (``''`` is none). An empty item is kept as None for
    ``check_lists`` to refuse: the value it advises depends on ``--lam`` too."""
    if not text.strip():
        return ()
    try:
        return tuple(float(x) if x.strip() else None for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, e.g. 0.1,1; got {text!r}") \
            from None


def overrides_from_args(args) -> dict[str, Any]:
    out = {}
    for f in fields(RunConfig):
        if f.name == "preset":
            continue
        v = getattr(args, f.name, None)
        if v is not None:
            out[f.name] = v
    return out
