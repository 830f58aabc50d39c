"""The app's Plotly figures (no Streamlit here): one function per figure, from tidy frames to ``go.Figure``.

Colours come from the varieties table (``data.varieties.VARIETIES``), so a variety has the same colour on every page
and on the map. Every figure keeps Plotly's toolbar, whose camera button exports a PNG.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from ..data.varieties import HR, VARIETIES, short_name, variety_label

COLOURS = {v.code: v.color for v in VARIETIES}
REGION_COLOURS = {"Standard": "#1f1f1f", "Nile Valley": "#d62728", "Maghrebi": "#2ca02c", "Levantine": "#1f77b4",
                  "Mesopotamian": "#9467bd", "Yemeni": "#e377c2", "Gulf": "#8c564b", "English": "#7f7f7f"}
FONT = "Noto Naskh Arabic, Noto Sans Arabic, DejaVu Sans, Arial, sans-serif"
BASEMAP = Path(__file__).with_name("assets") / "basemap.geojson"


def _style(fig: go.Figure, height: int = 420, **layout) -> go.Figure:
    layout = {"legend": {"itemsizing": "constant"}, **layout}
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, font={"family": FONT}, **layout)
    return fig


def _wrap(text: str, width: int = 60) -> str:
    words, lines, cur = str(text).split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width and cur:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    lines.append(cur)
    return "<br>".join(lines[:6]) + (" …" if len(lines) > 6 else "")


# ---------------------------------------------------------------- embeddings


def embedding(points: pd.DataFrame, *, colour_by: str = "variety", links: bool = False, title: str = "") -> go.Figure:
    """Scatter of 2-D sentence coordinates; ``points`` has x, y, variety, region, sent_id, text.

    ``links`` joins each dialect sentence to its MSA translation (same sent_id) with a faint line."""
    df = points.copy()
    df["Variety"] = [variety_label(c) for c in df["variety"]]
    df["hover"] = [_wrap(t) for t in df["text"]]
    if colour_by == "region":
        colour, cmap = "region", REGION_COLOURS
    else:
        colour, cmap = "Variety", {variety_label(c): COLOURS.get(c, "#999") for c in df["variety"].unique()}
    fig = px.scatter(df, x="x", y="y", color=colour, color_discrete_map=cmap, title=title,
                     custom_data=["sent_id", "Variety", "hover"])
    msa = variety_label(HR)
    fig.update_traces(hovertemplate="<b>%{customdata[1]}</b> · %{customdata[0]}<br>%{customdata[2]}<extra></extra>",
                      marker={"size": 8, "opacity": 0.85, "line": {"width": 0.5, "color": "white"}})
    for trace in fig.data:  # MSA sentences as stars, whatever the colouring
        trace.marker.symbol = ["star" if cd[1] == msa else "circle" for cd in trace.customdata]
        trace.marker.size = [12 if cd[1] == msa else 8 for cd in trace.customdata]
    if links:
        fig.add_trace(_links(df))
        fig.data = (fig.data[-1], *fig.data[:-1])  # lines under the points
    fig.update_xaxes(showticklabels=False, title=None)
    fig.update_yaxes(showticklabels=False, title=None)
    return _style(fig, height=540, legend={"orientation": "h", "yanchor": "top", "y": -0.02, "itemsizing": "constant"},
                  legend_title_text="")


def _links(df: pd.DataFrame) -> go.Scatter:
    xs: list[float | None] = []
    ys: list[float | None] = []
    for _, g in df.groupby("sent_id", sort=False):
        hub = g[g["variety"] == HR]
        if hub.empty:   # no MSA row: chain the translations instead
            xs += [*g["x"], None]
            ys += [*g["y"], None]
            continue
        hx, hy = float(hub["x"].iloc[0]), float(hub["y"].iloc[0])
        for x, y in zip(g.loc[g["variety"] != HR, "x"], g.loc[g["variety"] != HR, "y"]):
            xs += [hx, float(x), None]
            ys += [hy, float(y), None]
    return go.Scatter(x=xs, y=ys, mode="lines", line={"width": 0.7, "color": "rgba(120,120,120,0.35)"},
                      hoverinfo="skip", showlegend=True, name="same sentence")


# ---------------------------------------------------------------- subspace over time


def angles(refits: pd.DataFrame) -> go.Figure:
    """Largest principal angle of each refit to the previous and to the first estimate, vs step."""
    long = refits.melt(id_vars=["step", "site"], value_vars=["angle_prev_deg", "angle_first_deg"],
                       var_name="compared with", value_name="angle (degrees)").dropna()
    long["compared with"] = long["compared with"].map({"angle_prev_deg": "previous refit",
                                                       "angle_first_deg": "first refit"})
    fig = px.line(long, x="step", y="angle (degrees)", color="compared with", line_dash="site", markers=True,
                  color_discrete_map={"previous refit": "#d62728", "first refit": "#1f77b4"},
                  title="How far the MSA subspace moves between refits")
    fig.update_yaxes(range=[0, 92])
    return _style(fig, height=360)


def probe_per_variety(per: pd.DataFrame, metric: str) -> go.Figure:
    """Probe ``metric`` (accuracy or code_length_bits) per variety over refits."""
    df = per.copy()
    df["Variety"] = [variety_label(c) for c in df["variety"]]
    cmap = {variety_label(c): COLOURS.get(c, "#999") for c in df["variety"].unique()}
    names = {"accuracy": "probe accuracy", "code_length_bits": "code length (bits)", "compression": "compression"}
    fig = px.line(df, x="step", y=metric, color="Variety", color_discrete_map=cmap, markers=True,
                  line_dash="site" if df["site"].nunique() > 1 else None,
                  labels={metric: names.get(metric, metric)}, title=f"{names.get(metric, metric).capitalize()} "
                                                                     "per variety at each refit")
    return _style(fig, height=360)


def energy_heatmap(frame: pd.DataFrame, title: str, zrange: tuple[float, float] | None = None) -> go.Figure:
    """Variety × checkpoint heatmap of the mean share of energy inside the MSA subspace.

    ``zrange`` fixes the colour scale, so two heatmaps drawn side by side can be compared cell by cell."""
    z = frame.to_numpy(dtype=float)
    lo, hi = zrange if zrange else (None, None)
    fig = go.Figure(go.Heatmap(z=z, x=[str(c) for c in frame.columns], y=[variety_label(c) for c in frame.index],
                               zmin=lo, zmax=hi, colorscale="Viridis", colorbar={"title": "‖Uᵀh‖/‖h‖"},
                               hovertemplate="%{y}<br>step %{x}<br>share %{z:.3f}<extra></extra>"))
    fig.update_xaxes(title="checkpoint (training step)", type="category")
    fig.update_yaxes(autorange="reversed")
    return _style(fig, height=max(260, 60 + 34 * len(frame)), title=title)


def shared_range(frames: list[pd.DataFrame]) -> tuple[float, float] | None:
    """(min, max) over the finite values of several frames: one colour scale for heatmaps shown together."""
    values = np.concatenate([f.to_numpy(dtype=float).ravel() for f in frames]) if frames else np.array([])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else None


GEOMETRY_LABELS = {"centroid_cosine": "centroid cosine similarity", "centroid_l2": "centroid L2 distance",
                   "paired_cosine": "cosine of paired translations", "cka": "linear CKA"}


def per_layer(geo: pd.DataFrame, metric: str, title: str) -> go.Figure:
    """``metric`` of each dialect vs MSA per layer; one colour per variety, one dash per model."""
    df = geo.dropna(subset=[metric]).copy()
    df = df[df["variety"] != HR]
    df["Variety"] = [variety_label(c) for c in df["variety"]]
    df["layer"] = [int(s.split(".")[1]) for s in df["site"]]
    cmap = {variety_label(c): COLOURS.get(c, "#999") for c in df["variety"].unique()}
    fig = px.line(df.sort_values("layer"), x="layer", y=metric, color="Variety", line_dash="model",
                  color_discrete_map=cmap, markers=True, title=title,
                  labels={metric: GEOMETRY_LABELS.get(metric, metric)})
    fig.update_xaxes(dtick=1)
    return _style(fig, height=380)


# ---------------------------------------------------------------- headline


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


def delta_map(frame: pd.DataFrame, title: str) -> go.Figure:
    """Dialect cities coloured by Δ chrF++ (diverging, 0 = white), on country outlines drawn as plain lines.

    Plotly's own geo layers (land, coasts, countries) and any trace with ``locations`` make plotly.js fetch a
    topojson file from its CDN, which an offline laptop cannot reach; so every layer is off and the countries
    are a lon/lat line trace from the bundled ``assets/basemap.geojson``."""
    lon, lat = _basemap()
    fig = go.Figure(go.Scattergeo(lon=lon, lat=lat, mode="lines", fill="toself", fillcolor="#f3f4f6",
                                  line={"width": 0.6, "color": "#9ca3af"}, hoverinfo="skip", showlegend=False))
    if len(frame):
        lim = max(0.5, float(np.nanmax(np.abs(frame["delta"]))))
        text = [f"<b>{n}</b><br>Δ chrF++ {d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for n, d, lo, hi in
                zip(frame["name"], frame["delta"], frame["low"], frame["high"])]
        fig.add_trace(go.Scattergeo(
            lat=frame["lat"], lon=frame["lon"], text=text, hovertemplate="%{text}<extra></extra>",
            mode="markers+text", textposition="top center",
            texttemplate=[f"{c} {d:+.1f}" for c, d in zip(frame["city"], frame["delta"])],
            marker={"size": [16 if s else 11 for s in frame["significant"]], "color": frame["delta"],
                        "colorscale": "RdBu", "cmin": -lim, "cmax": lim, "line": {"width": 1, "color": "#333"},
                        "colorbar": {"title": "Δ chrF++"}}, showlegend=False))
    fig.update_geos(showcoastlines=False, showland=False, showocean=False, showlakes=False, showrivers=False,
                    showcountries=False, showsubunits=False, showframe=False, bgcolor="#dbe9f6",
                    lonaxis_range=[-18, 62], lataxis_range=[6, 44], projection_type="equirectangular")
    return _style(fig, height=480, title=title)


def delta_bars(table: pd.DataFrame, deltas: pd.DataFrame, system: str) -> go.Figure:
    """Δ chrF++ vs baseline per direction with its 95% bootstrap interval."""
    d = deltas[deltas["system"] == system].copy()
    d["direction label"] = [f"{short_name(s)} → {short_name(t)}" for s, t in zip(d["src"], d["tgt"])]
    order = [x for x in table["direction"] if x in set(d["direction label"])]
    d = d.set_index("direction label").loc[order].reset_index()
    colours = ["#2166ac" if lo > 0 else "#b2182b" if hi < 0 else "#999999" for lo, hi in zip(d["low"], d["high"])]
    fig = go.Figure(go.Bar(x=d["direction label"], y=d["delta"], marker_color=colours,
                           error_y={"type": "data", "symmetric": False, "array": d["high"] - d["delta"],
                                        "arrayminus": d["delta"] - d["low"]},
                           hovertemplate="%{x}<br>Δ %{y:+.2f}<extra></extra>"))
    fig.add_hline(y=0, line_color="#333", line_width=1)
    fig.update_yaxes(title=f"Δ chrF++ ({system} − baseline)")
    return _style(fig, height=360, title=f"{system} vs baseline, per direction (bars: 95% interval)")
