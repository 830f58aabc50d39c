"""The map of Home: dialect cities coloured by Δ chrF++ on country outlines, with labels that fit.

Labels are placed by ``label_layout``: inside the map, off every other label and every city's dot, moved out
(with a leader line) when their dot is crowded, so MADAR's 25 cities stay readable. Nothing is fetched: the
outlines are a bundled file (``figures.BASEMAP``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from .figures import BASEMAP, DELTA_SCALE, _style


@functools.lru_cache(maxsize=1)
def _basemap() -> tuple[tuple[float | None, ...], tuple[float | None, ...]]:
    """Country outlines as one lon/lat path, rings separated by None (read once per process)."""
    geo = json.loads(BASEMAP.read_text(encoding="utf-8"))
    lon: list[float | None] = []
    lat: list[float | None] = []
    for feature in geo["features"]:
        for polygon in feature["geometry"]["coordinates"]:
            for ring in polygon:
                lon += [p[0] for p in ring] + [None]
                lat += [p[1] for p in ring] + [None]
    return tuple(lon), tuple(lat)


# label placement on the map: the box a label takes (degrees at the map's zoom), the map's extent, and the gaps
# tried between a dot and its label (beyond the first, a thin leader line joins them)
_CHAR_DEG, _LINE_DEG = 0.62, 1.5
MAP_LON, MAP_LAT = (-18.0, 62.0), (6.0, 44.0)
_GAPS = (0.6, 1.8, 3.2, 4.8, 6.6, 8.6)
_DIRECTIONS = tuple((math.cos(math.radians(a)), math.sin(math.radians(a))) for a in range(0, 360, 30))

Box = tuple[float, float, float, float]


def label_box(x: float, y: float, text: str) -> Box:
    """The box (lon0, lat0, lon1, lat1) a label centred at (x, y) takes."""
    w, h = _CHAR_DEG * len(text), _LINE_DEG
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


def label_layout(lon: Sequence[float], lat: Sequence[float], texts: Sequence[str],
                 bounds: tuple[tuple[float, float], tuple[float, float]] = (MAP_LON, MAP_LAT)) \
        -> list[tuple[float, float]]:
    """A centre (lon, lat) per label such that every label lies inside the map (``bounds``), overlaps no other
    label and covers no city's dot: tried near its dot first, then further out in 12 directions (the page joins a
    moved label to its dot with a leader line). Crowded cities are placed first; when nothing is free (more
    labels than room) the least crowded place wins."""
    dots = [(float(x), float(y)) for x, y in zip(lon, lat)]
    (x0, x1), (y0, y1) = bounds
    placed: list[Box] = []
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(texts)

    def crowd(i: int) -> int:
        return sum(abs(dots[i][0] - x) < 8 and abs(dots[i][1] - y) < 4 for x, y in dots)

    def clashes(b: Box) -> int:
        n = sum(b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3] for o in placed)
        n += sum(b[0] - 0.4 < x < b[2] + 0.4 and b[1] - 0.4 < y < b[3] + 0.4 for x, y in dots)
        return n + 100 * (b[0] < x0 or b[2] > x1 or b[1] < y0 or b[3] > y1)     # outside the map: cut

    for i in sorted(range(len(texts)), key=lambda k: (-crowd(k), -dots[k][1])):
        w, h = _CHAR_DEG * len(texts[i]), _LINE_DEG
        best = None
        for r, gap in enumerate(_GAPS):
            for d, (dx, dy) in enumerate(_DIRECTIONS):
                cx, cy = dots[i][0] + dx * (w / 2 + gap), dots[i][1] + dy * (h / 2 + gap)
                score = (clashes(label_box(cx, cy, texts[i])), r, d)
                if best is None or score < best[0]:
                    best = (score, (cx, cy))
            if best[0][0] == 0:
                break
        out[i] = best[1]
        placed.append(label_box(*best[1], texts[i]))
    return out


def delta_map(frame: pd.DataFrame, title: str, limit: float) -> go.Figure:
    """Dialect cities coloured by Δ chrF++ on the fixed scale ±``limit`` (diverging, 0 = white), on country
    outlines drawn as plain lines.

    Plotly's own geo layers (land, coasts, countries) and any trace with ``locations`` make plotly.js fetch a
    topojson file from its CDN, which an offline laptop cannot reach; so every layer is off and the countries
    are a lon/lat line trace from the bundled ``assets/basemap.geojson``."""
    lon, lat = _basemap()
    fig = go.Figure(go.Scattergeo(lon=lon, lat=lat, mode="lines", fill="toself", fillcolor="#f3f4f6",
                                  line={"width": 0.6, "color": "#9ca3af"}, hoverinfo="skip", showlegend=False))
    if len(frame):
        text = [f"<b>{n}</b><br>Δ chrF++ {d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for n, d, lo, hi in
                zip(frame["name"], frame["delta"], frame["low"], frame["high"])]
        labels = [f"{c} {d:+.1f}" for c, d in zip(frame["city"], frame["delta"])]
        centres = label_layout(frame["lon"], frame["lat"], labels)
        leaders_lon: list[float | None] = []
        leaders_lat: list[float | None] = []
        for x, y, (cx, cy), t in zip(frame["lon"], frame["lat"], centres, labels):
            b = label_box(cx, cy, t)        # a label moved away from its dot gets a line to it
            if not (b[0] - 1.0 < x < b[2] + 1.0 and b[1] - 1.0 < y < b[3] + 1.0):
                leaders_lon += [x, min(max(x, b[0]), b[2]), None]
                leaders_lat += [y, min(max(y, b[1]), b[3]), None]
        if leaders_lon:
            fig.add_trace(go.Scattergeo(lon=leaders_lon, lat=leaders_lat, mode="lines", hoverinfo="skip",
                                        line={"width": 0.7, "color": "#6b7280"}, showlegend=False))
        fig.add_trace(go.Scattergeo(lon=[c[0] for c in centres], lat=[c[1] for c in centres], text=labels,
                                    mode="text", textposition="middle center", textfont={"size": 12},
                                    hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scattergeo(
            lat=frame["lat"], lon=frame["lon"], text=text, hovertemplate="%{text}<extra></extra>",
            mode="markers",
            marker={"size": [16 if s else 11 for s in frame["significant"]], "color": frame["delta"],
                    "colorscale": DELTA_SCALE, "cmin": -limit, "cmax": limit, "cmid": 0,
                    "line": {"width": 1, "color": "#333"},
                    "colorbar": {"title": "Δ chrF++", "tickformat": "+.1f"}},
            showlegend=False))
    fig.update_geos(showcoastlines=False, showland=False, showocean=False, showlakes=False, showrivers=False,
                    showcountries=False, showsubunits=False, showframe=False, bgcolor="#dbe9f6",
                    lonaxis_range=list(MAP_LON), lataxis_range=list(MAP_LAT), projection_type="equirectangular")
    return _style(fig, height=460, title=title)
