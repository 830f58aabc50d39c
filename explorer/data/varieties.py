"""The varieties table: one short code per variety, used everywhere (training, maps, colours, labels).

Everything downstream names a variety by its code from ``VARIETIES``, so this table is the single source of truth
for names, cities, regions, map positions and colours, and for the labels every page and table shows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

HR = "arb"  # the high-resource standard variety (MSA), in FLORES and MADAR alike


ENG = "eng"



# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Variety:
    """One language variety. ``lat``/``lon`` place it on maps (None for MSA and English, which have no city)."""

    code: str
    name: str
    city: str | None
    country: str | None
    region: str
    lat: float | None
    lon: float | None
    sources: tuple[str, ...]
    color: str


def _v(code, name, city, country, region, lat, lon, sources, color) -> Variety:
    return Variety(code, name, city, country, region, lat, lon, tuple(sources.split()), color)


# Regions follow the usual dialect groups (MADAR's own grouping, with Iraq split out as Mesopotamian so that it
# matches FLORES' acm). Colours: MSA and the 8 FLORES dialects, shown together on every page of a FLORES run, take
# nine colours from Paul Tol's and Okabe & Ito's colour-blind-safe sets, chosen so that every pair stays at least
# 13 CIEDE2000 apart for normal vision and under simulated protanopia, deuteranopia and tritanopia
# (``ui.palette``; tests/test_palette.py). MADAR's 25 cities cannot all be told apart by colour: they share a hue
# per region, and the pages let the reader pick a city instead of drawing all of them.
VARIETIES: tuple[Variety, ...] = (
    _v("arb", "Modern Standard Arabic", None, None, "Standard", None, None, "flores madar", "#1f1f1f"),
    # FLORES-200 dialects; the city is a representative one for the map.
    _v("arz", "Egyptian Arabic (Cairo)", "Cairo", "Egypt", "Nile Valley", 30.04, 31.24, "flores", "#ee3377"),
    _v("ary", "Moroccan Arabic (Rabat)", "Rabat", "Morocco", "Maghrebi", 34.02, -6.84, "flores", "#117733"),
    _v("aeb", "Tunisian Arabic (Tunis)", "Tunis", "Tunisia", "Maghrebi", 36.81, 10.18, "flores", "#56b4e9"),
    _v("apc", "North Levantine Arabic (Beirut)", "Beirut", "Lebanon", "Levantine", 33.89, 35.50, "flores",
       "#332288"),
    _v("ajp", "South Levantine Arabic (Amman)", "Amman", "Jordan", "Levantine", 31.95, 35.93, "flores", "#aa4499"),
    _v("acm", "Mesopotamian Arabic (Baghdad)", "Baghdad", "Iraq", "Mesopotamian", 33.31, 44.36, "flores",
       "#999933"),
    _v("acq", "Ta'izzi-Adeni Arabic (Taiz)", "Taiz", "Yemen", "Yemeni", 13.58, 44.02, "flores", "#cc79a7"),
    _v("ars", "Najdi Arabic (Riyadh)", "Riyadh", "Saudi Arabia", "Gulf", 24.71, 46.68, "flores", "#ddcc77"),
    # MADAR's 25 cities (Bouamor et al. 2018); `city` is spelled as in the release's file names.
    _v("cai", "Cairo Arabic", "Cairo", "Egypt", "Nile Valley", 30.04, 31.24, "madar", "#b2182b"),
    _v("alx", "Alexandria Arabic", "Alexandria", "Egypt", "Nile Valley", 31.20, 29.92, "madar", "#ef6548"),
    _v("asw", "Aswan Arabic", "Aswan", "Egypt", "Nile Valley", 24.09, 32.90, "madar", "#fc8d59"),
    _v("kha", "Khartoum Arabic", "Khartoum", "Sudan", "Nile Valley", 15.50, 32.56, "madar", "#8c2d04"),
    _v("rab", "Rabat Arabic", "Rabat", "Morocco", "Maghrebi", 34.02, -6.84, "madar", "#1b7837"),
    _v("fes", "Fes Arabic", "Fes", "Morocco", "Maghrebi", 34.03, -5.00, "madar", "#5aae61"),
    _v("alg", "Algiers Arabic", "Algiers", "Algeria", "Maghrebi", 36.75, 3.06, "madar", "#a6d96a"),
    _v("tun", "Tunis Arabic", "Tunis", "Tunisia", "Maghrebi", 36.81, 10.18, "madar", "#006837"),
    _v("sfx", "Sfax Arabic", "Sfax", "Tunisia", "Maghrebi", 34.74, 10.76, "madar", "#b8e186"),
    _v("tri", "Tripoli Arabic", "Tripoli", "Libya", "Maghrebi", 32.89, 13.19, "madar", "#4d9221"),
    _v("ben", "Benghazi Arabic", "Benghazi", "Libya", "Maghrebi", 32.12, 20.07, "madar", "#7fbc41"),
    _v("bei", "Beirut Arabic", "Beirut", "Lebanon", "Levantine", 33.89, 35.50, "madar", "#08519c"),
    _v("dam", "Damascus Arabic", "Damascus", "Syria", "Levantine", 33.51, 36.29, "madar", "#3182bd"),
    _v("ale", "Aleppo Arabic", "Aleppo", "Syria", "Levantine", 36.20, 37.16, "madar", "#6baed6"),
    _v("jer", "Jerusalem Arabic", "Jerusalem", "Palestine", "Levantine", 31.78, 35.22, "madar", "#2171b5"),
    _v("amm", "Amman Arabic", "Amman", "Jordan", "Levantine", 31.95, 35.93, "madar", "#9ecae1"),
    _v("sal", "Salt Arabic", "Salt", "Jordan", "Levantine", 32.04, 35.73, "madar", "#4292c6"),
    _v("bag", "Baghdad Arabic", "Baghdad", "Iraq", "Mesopotamian", 33.31, 44.36, "madar", "#54278f"),
    _v("bas", "Basra Arabic", "Basra", "Iraq", "Mesopotamian", 30.51, 47.78, "madar", "#807dba"),
    _v("mos", "Mosul Arabic", "Mosul", "Iraq", "Mesopotamian", 36.34, 43.13, "madar", "#bcbddc"),
    _v("riy", "Riyadh Arabic", "Riyadh", "Saudi Arabia", "Gulf", 24.71, 46.68, "madar", "#a6761d"),
    _v("jed", "Jeddah Arabic", "Jeddah", "Saudi Arabia", "Gulf", 21.49, 39.19, "madar", "#e6ab02"),
    _v("doh", "Doha Arabic", "Doha", "Qatar", "Gulf", 25.29, 51.53, "madar", "#bf812d"),
    _v("mus", "Muscat Arabic", "Muscat", "Oman", "Gulf", 23.59, 58.41, "madar", "#dfc27d"),
    _v("san", "Sanaa Arabic", "Sanaa", "Yemen", "Yemeni", 15.37, 44.19, "madar", "#c51b7d"),
    _v("eng", "English", None, None, "English", None, None, "flores", "#7f7f7f"),
)


_BY_CODE = {v.code: v for v in VARIETIES}


FLORES_CODES: tuple[str, ...] = tuple(v.code for v in VARIETIES if "flores" in v.sources and v.code != ENG)


MADAR_CODES: tuple[str, ...] = tuple(v.code for v in VARIETIES if "madar" in v.sources)


class UnknownVarietyError(ValueError):
    """A variety code that is not in ``VARIETIES``."""


def variety(code: str) -> Variety:
    """The table entry for ``code``; raises ``UnknownVarietyError`` listing the codes that exist."""
    try:
        return _BY_CODE[code]
    except KeyError:
        raise UnknownVarietyError(
            f"unknown variety code {code!r}. Known codes: {', '.join(_BY_CODE)}. "
            "Use one of these (lowercase ISO 639-3 codes for FLORES, 3-letter MADAR city codes for MADAR)."
        ) from None


def varieties_frame() -> pd.DataFrame:
    """One row per variety (code, name, city, country, region, lat, lon, sources, color) for maps and tables."""
    rows = [{**asdict(v), "sources": ", ".join(v.sources)} for v in VARIETIES]
    return pd.DataFrame(rows).astype({"lat": float, "lon": float})


def order_codes(codes) -> list[str]:
    """Codes in table order: HR first, dialects as listed in ``VARIETIES``, English last."""
    rank = {c: i for i, c in enumerate(_BY_CODE)}
    return sorted(set(codes), key=lambda c: (c != HR, c == ENG, rank[c]))



# ---------------------------------------------------------------- labels and tags


def variety_tag(code: str) -> str:
    """The tag that marks a segment's variety in a prompt, e.g. ``<arz>``."""
    return f"<{code}>"


KINDS = ("MSA → dialect", "dialect → MSA", "English → MSA", "MSA → English", "other")


def short_name(code: str) -> str:
    """'Egyptian' for arz, 'MSA' for arb: the label used in direction names."""
    if code == HR:
        return "MSA"
    if code == ENG:
        return "English"
    try:
        return variety(code).name.split(" Arabic")[0].split(" (")[0]
    except ValueError:
        return code


def prompt_name(code: str) -> str:
    """How an instruction prompt names a variety: 'Modern Standard Arabic', 'Egyptian Arabic' (FLORES arz),
    'Cairo Arabic' (MADAR cai), 'English'; the table's name without the city in brackets (an unknown code is
    named by itself)."""
    try:
        return variety(code).name.split(" (")[0]
    except UnknownVarietyError:
        return code


def variety_label(code: str) -> str:
    """'Egyptian (arz)', 'MSA (arb)', 'English': how a variety is named in pickers, legends and tables."""
    return "English" if code == ENG else f"{short_name(code)} ({code})"


def direction_kind(src: str, tgt: str) -> str:
    if src == HR and tgt not in (HR, ENG):
        return KINDS[0]
    if tgt == HR and src not in (HR, ENG):
        return KINDS[1]
    if src == ENG and tgt == HR:
        return KINDS[2]
    if src == HR and tgt == ENG:
        return KINDS[3]
    return KINDS[4]


def direction_label(src: str, tgt: str) -> str:
    return f"{short_name(src)} → {short_name(tgt)}"


def dialect_of(src: str, tgt: str) -> str:
    """The variety a direction is about: the dialect side, else the non-MSA side, else the target."""
    for c in (tgt, src):
        if c not in (HR, ENG):
            return c
    return src if src != HR else tgt
