"""The app's Plotly figures (no Streamlit here): one function per figure, from tidy frames to ``go.Figure``.

- Colours come from the varieties table (``data.varieties.VARIETIES``, checked for colour-blind readers in
  ``ui.palette``), so a variety has the same colour on every page and on the map.
- Text that can hold Arabic is wrapped in Unicode first-strong isolates (FSI … PDI, the plain-text equivalent of
  ``dir="auto"``) in hover labels, so that a right-to-left sentence next to a Latin id or a number keeps its order.
- Δ chrF++ is drawn on one fixed, symmetric scale (``delta_limit``) for every arm and direction, so a colour means
  the same number wherever it appears.
- Figures are built from ``graph_objects`` with plain dicts (``plotly.express`` costs ~50 ms a figure) and are
  cached by the app (``ui.cache.figure``); ``config(name)`` gives the toolbar settings (PNG at 2x; the app's script
  adds an SVG button beside it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..data.varieties import HR, VARIETIES, short_name, variety_label
from ..names import arm_of

COLOURS = {v.code: v.color for v in VARIETIES}
# dialect groups take the colour of their FLORES dialect (all checked together in tests/test_palette.py)
REGION_COLOURS = {"Standard": COLOURS[HR], "Nile Valley": COLOURS["arz"], "Maghrebi": COLOURS["ary"],
                  "Levantine": COLOURS["apc"], "Mesopotamian": COLOURS["acm"], "Yemeni": COLOURS["acq"],
                  "Gulf": COLOURS["ars"], "English": "#7f7f7f"}
MODEL_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
MODEL_COLOURS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb")
DELTA_SCALE = "RdBu"    # diverging, blue = better; red/blue stays apart for red-green colour blindness
FONT = "Noto Naskh Arabic, Noto Sans Arabic, DejaVu Sans, Arial, sans-serif"
BASEMAP = Path(__file__).with_name("assets") / "basemap.geojson"
FSI, PDI = "\u2068", "\u2069"


def config(name: str) -> dict:
    """``st.plotly_chart(config=...)``: toolbar kept, PNG export at 2x named after the figure."""
    return {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2, "filename": name}}


def iso(text: str) -> str:
    """``text`` as a directional isolate (its own direction from its first strong character, like dir="auto")."""
    return f"{FSI}{text}{PDI}"


# titles: font sizes (px), line height (in font sizes), characters per line of a full-width figure, space above
TITLE_PX, SUBTITLE_PX, LINE, TITLE_CHARS, TITLE_PAD = 16, 14, 1.35, 70, 8


def _lines(text: str, width: int) -> list[str]:
    """``text`` broken at spaces into lines of at most ``width`` characters (a longer word keeps its line)."""
    out: list[str] = []
    for part in str(text).split("<br>"):
        cur = ""
        for w in part.split():
            if cur and len(cur) + 1 + len(w) > width:
                out.append(cur)
                cur = w
            else:
                cur = f"{cur} {w}".strip()
        out.append(cur)
    return [x for x in out if x]


def subplot_titles(fig: go.Figure) -> list:
    """The annotations ``make_subplots`` puts above each panel (anchored at their bottom on the panel's top)."""
    return [a for a in fig.layout.annotations or ()
            if a.yref == "paper" and a.yanchor == "bottom" and a.showarrow is False]


def _style(fig: go.Figure, height: int = 420, *, title: str = "", title_chars: int = TITLE_CHARS,
           **layout) -> go.Figure:
    """The app's look, and titles that never overlap: the title is wrapped to ``title_chars`` characters a line
    (``TITLE_CHARS`` for a full-width figure, about half for one of two side by side), each panel's title to its
    share of that, and the top margin is made tall enough for all their lines, so the title sits above the panel
    titles and they sit above the plot (the figure grows by what the margin takes)."""
    lines = _lines(title, title_chars) if title else []
    subs = subplot_titles(fig)
    sub_lines = 0
    for a in subs:
        wrapped = _lines(a.text or "", max(12, title_chars // len(subs) - 2))
        a.update(text="<br>".join(wrapped), font={"size": SUBTITLE_PX})
        sub_lines = max(sub_lines, len(wrapped))
    top = (TITLE_PAD + math.ceil(len(lines) * TITLE_PX * LINE) + 6 if lines else 10) \
        + (math.ceil(sub_lines * SUBTITLE_PX * LINE) + 4 if sub_lines else 0)
    layout = {"legend": {"itemsizing": "constant"}, **layout}
    fig.update_layout(height=height + max(0, top - 40), margin={"l": 10, "r": 10, "t": max(top, 20), "b": 10},
                      font={"family": FONT}, hoverlabel={"font": {"family": FONT}},
                      title={"text": "<br>".join(lines), "x": 0, "xanchor": "left", "y": 1, "yref": "container",
                             "yanchor": "top", "pad": {"t": TITLE_PAD}, "font": {"size": TITLE_PX}}, **layout)
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
    return "<br>".join(iso(x) for x in lines[:6]) + (" …" if len(lines) > 6 else "")


def model_colour(i: int) -> str:
    return MODEL_COLOURS[i % len(MODEL_COLOURS)]


def model_style(model: str, models: Sequence[str]) -> dict:
    """The line of ``model`` in a chart of ``models``: one hue per arm (the base its own), one dash per seed, so
    "random.s0" never takes the base's colour however many models are drawn."""
    def split(m: str) -> tuple[str, str]:
        arm, sep, seed = m.rpartition(".s")
        return (arm, seed) if sep and arm and seed.isdigit() else (m, "")

    arms = list(dict.fromkeys(split(m)[0] for m in models))
    arm, seed = split(model)
    seeds = sorted({split(m)[1] for m in models if split(m)[0] == arm}, key=lambda x: int(x) if x else -1)
    return {"color": model_colour(arms.index(arm)), "dash": MODEL_DASHES[seeds.index(seed) % len(MODEL_DASHES)]}


# ---------------------------------------------------------------- embeddings


def embedding(points: pd.DataFrame, *, colour_by: str = "variety", link: str | None = None,
              title: str = "") -> go.Figure:
    """Scatter of 2-D sentence coordinates; ``points`` has x, y, variety, region, sent_id, text.

    ``link`` (a dialect code) joins each of that dialect's sentences to its MSA translation (same sent_id) with a
    faint line; one dialect at a time, so the lines can be followed."""
    fig = go.Figure()
    if link:
        fig.add_trace(_links(points, link))
    groups = points["region"] if colour_by == "region" else points["variety"]
    for g in pd.unique(groups):
        df = points[groups == g]
        is_msa = (df["variety"] == HR).to_numpy()
        name = variety_label(HR) if g in (HR, "Standard") else (g if colour_by == "region" else variety_label(g))
        colour = REGION_COLOURS.get(g, "#999") if colour_by == "region" else COLOURS.get(g, "#999")
        custom = np.stack([df["sent_id"].astype(str), [variety_label(v) for v in df["variety"]],
                           [_wrap(t) for t in df["text"]]], axis=-1)
        fig.add_trace(go.Scatter(
            x=df["x"].to_numpy(), y=df["y"].to_numpy(), mode="markers", name=name, customdata=custom,
            hovertemplate="<b>%{customdata[1]}</b> · %{customdata[0]}<br>%{customdata[2]}<extra></extra>",
            hoverlabel={"align": "right"},
            marker={"color": colour, "size": np.where(is_msa, 12, 8), "symbol": np.where(is_msa, "star", "circle"),
                    "opacity": 0.85, "line": {"width": 0.5, "color": "white"}}))
    fig.update_xaxes(showticklabels=False, title=None)
    fig.update_yaxes(showticklabels=False, title=None)
    return _style(fig, height=520, title=title, title_chars=TITLE_CHARS // 2, legend={"orientation": "h", "yanchor": "top", "y": -0.02,
                                                        "itemsizing": "constant"})


def _links(df: pd.DataFrame, dialect: str) -> go.Scatter:
    hub = df[df["variety"] == HR].set_index("sent_id")[["x", "y"]]
    rows = df[(df["variety"] == dialect) & df["sent_id"].isin(hub.index)]
    xs: list[float | None] = []
    ys: list[float | None] = []
    for sid, x, y in zip(rows["sent_id"], rows["x"], rows["y"]):
        xs += [float(hub.at[sid, "x"]), float(x), None]
        ys += [float(hub.at[sid, "y"]), float(y), None]
    return go.Scatter(x=xs, y=ys, mode="lines", line={"width": 0.8, "color": "rgba(90,90,90,0.45)"},
                      hoverinfo="skip", showlegend=True, name=f"{short_name(dialect)} ↔ MSA translation")


# ---------------------------------------------------------------- subspace over time


def angles(refits: pd.DataFrame, title: str = "How far the MSA subspace moves between refits") -> go.Figure:
    """Largest principal angle of each refit to the previous and to the first estimate, vs step (0°–90°)."""
    fig = go.Figure()
    for col, name, colour in (("angle_prev_deg", "previous refit", "#ee6677"),
                              ("angle_first_deg", "first refit", "#4477aa")):
        for i, (site, g) in enumerate(refits.sort_values("step").groupby("site", sort=True)):
            g = g.dropna(subset=[col])
            fig.add_trace(go.Scatter(x=g["step"], y=g[col], mode="lines+markers", name=f"{name} · {site}",
                                     line={"color": colour, "dash": MODEL_DASHES[i % len(MODEL_DASHES)]},
                                     hovertemplate=f"{name} · {site}<br>step %{{x}}: %{{y:.0f}}°<extra></extra>"))
    _rejected_marks(fig, refits, y=3)
    fig.add_hline(y=90, line={"color": "#999", "width": 1, "dash": "dot"})
    fig.update_yaxes(range=[0, 95], title="largest principal angle (°)", dtick=15)
    fig.update_xaxes(title="training step")
    return _style(fig, height=340, title=title)


def probe(refits: pd.DataFrame, per: pd.DataFrame, chance: float, varieties: Sequence[str],
          metric: str = "accuracy") -> go.Figure:
    """The probe's held-out ``metric`` at each refit: overall (thick), chance (dotted, accuracy only) and the
    chosen ``varieties`` (thin, their colours)."""
    names = {"accuracy": "held-out accuracy", "code_length_bits": "code length (bits)", "compression": "compression"}
    fig = go.Figure()
    fitted = refits.dropna(subset=[metric]).sort_values("step") if metric in refits else refits.iloc[:0]
    if len(fitted):
        overall = fitted.groupby("step")[metric].mean()
        fig.add_trace(go.Scatter(x=overall.index, y=overall.values, mode="lines+markers", name="all tokens",
                                 line={"color": "#1f1f1f", "width": 3},
                                 hovertemplate="all tokens<br>step %{x}: %{y:.3g}<extra></extra>"))
    for v in varieties:
        g = per[per["variety"] == v].dropna(subset=[metric]).groupby("step")[metric].mean()
        if g.empty:
            continue
        fig.add_trace(go.Scatter(x=g.index, y=g.values, mode="lines+markers", name=variety_label(v),
                                 line={"color": COLOURS.get(v, "#999"), "width": 1.5},
                                 hovertemplate=f"{variety_label(v)}<br>step %{{x}}: %{{y:.3g}}<extra></extra>"))
    if metric == "accuracy" and len(fitted) and "gate_threshold" in fitted and fitted["gate_threshold"].notna().any():
        gate = fitted.groupby("step")["gate_threshold"].mean()
        fig.add_trace(go.Scatter(x=gate.index, y=gate.values, mode="lines", name="gate threshold",
                                 line={"color": "#cc3311", "width": 1.5, "dash": "dash", "shape": "hv"},
                                 hovertemplate="gate threshold<br>step %{x}: %{y:.3f}<extra></extra>"))
        ok = fitted[fitted["accepted"].astype(bool)].groupby("step")["accuracy"].mean()
        fig.add_trace(go.Scatter(x=ok.index, y=ok.values, mode="markers", name="accepted",
                                 marker={"symbol": "circle", "size": 11, "color": "#228833"},
                                 hovertemplate="accepted<br>step %{x}: %{y:.3f}<extra></extra>"))
    if metric == "accuracy":
        _rejected_marks(fig, fitted, y=None)
        if math.isfinite(chance):
            fig.add_hline(y=chance, line={"color": "#555", "width": 1.5, "dash": "dot"},
                          annotation_text=f"chance {chance:.2f}", annotation_position="bottom right")
        fig.update_yaxes(range=[0, 1.02])
    fig.update_yaxes(title=names.get(metric, metric))
    fig.update_xaxes(title="training step (refit)")
    return _style(fig, height=340, title=f"Probe {names.get(metric, metric)} at each refit")


def _rejected_marks(fig: go.Figure, refits: pd.DataFrame, y: float | None) -> None:
    """An ✕ at each refit the probe gate rejected (at its accuracy, or at height ``y``), the reason on hover."""
    if refits is None or refits.empty or "accepted" not in refits:
        return
    rej = refits[~refits["accepted"].astype(bool)].sort_values("step")
    if rej.empty:
        return
    ys = [y] * len(rej) if y is not None else rej["accuracy"]
    fig.add_trace(go.Scatter(x=rej["step"], y=ys, mode="markers", name="rejected by the gate",
                             marker={"symbol": "x", "size": 12, "color": "#cc3311", "line": {"width": 1}},
                             text=[f"{site}: {why}" for site, why in zip(rej["site"], rej["gate_reason"])],
                             hovertemplate="rejected at step %{x}<br>%{text}<extra></extra>"))


def penalties(frame: pd.DataFrame, arms: Sequence[str]) -> go.Figure:
    """The penalty over training steps, one panel per arm in ``arms`` (the decoupled arm beside its matched random
    control), one thin line per seed, on one y-axis; ``frame``: ``ExperimentView.penalties`` (NaN before any U)."""
    fig = make_subplots(rows=1, cols=max(1, len(arms)), shared_yaxes=True, subplot_titles=list(arms) or [""],
                        horizontal_spacing=0.04)
    for j, arm in enumerate(arms):
        g = frame[frame["arm"] == arm]
        for i, (model, m) in enumerate(g.groupby("model", sort=True)):
            m = m.sort_values("step")
            fig.add_trace(go.Scatter(x=m["step"], y=m["penalty"], mode="lines", name=model,
                                     line={"width": 1, "color": model_colour(j), "dash": MODEL_DASHES[i % 6]},
                                     hovertemplate=f"{model}<br>step %{{x}}: %{{y:.4g}}<extra></extra>"),
                          row=1, col=j + 1)
        fig.update_xaxes(title="training step", row=1, col=j + 1)
    fig.update_yaxes(title="penalty ‖Uᵀh‖²", row=1, col=1)
    return _style(fig, height=320, title="The penalty during training (gaps: no subspace in force yet)")


def posthoc_vs_energy(energy: pd.DataFrame, probes: pd.DataFrame, models: Sequence[str], site: str) -> go.Figure:
    """Per model over checkpoints, at ``site``: left, the mean share of the sentence vectors inside the model's MSA
    subspace (what the penalty pushes down); right, the held-out accuracy of a probe fitted afterwards on that
    model's states (whether MSA is still linearly readable; 0.5 = chance). ``energy``: ``geometry_long`` rows;
    ``probes``: ``ExperimentView.posthoc``; the base model is every arm's step 0."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("energy share in the MSA subspace (mean over varieties)",
                                                        "post-hoc probe accuracy (MSA vs dialect)"))
    base_e = energy[(energy["model"] == "base") & (energy["site"] == site)]["energy_share_mean"].mean()
    base_p = probes[(probes["model"] == "base") & (probes["site"] == site)]["accuracy"].mean()
    for model in models:
        e = (energy[(energy["model"] == model) & (energy["site"] == site)].groupby("step")["energy_share_mean"]
             .mean())
        p = probes[(probes["model"] == model) & (probes["site"] == site)].set_index("step")["accuracy"]
        for col, series, start in ((1, e, base_e), (2, p, base_p)):
            series = series.dropna()
            if math.isfinite(start):
                series = pd.concat([pd.Series([start], index=[0]), series[series.index > 0]])
            fig.add_trace(go.Scatter(x=series.index, y=series.values, mode="lines+markers", name=model,
                                     legendgroup=model, showlegend=col == 1,
                                     line={"width": 1.5, **model_style(model, models)},
                                     hovertemplate=f"{model}<br>step %{{x}}: %{{y:.3f}}<extra></extra>"),
                          row=1, col=col)
    fig.add_hline(y=0.5, line={"color": "#555", "width": 1, "dash": "dot"}, row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_xaxes(title="training step")
    return _style(fig, height=340, title=f"Does the penalty remove MSA information, or only move it? ({site})")


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
    return _style(fig, height=max(260, 60 + 34 * len(frame)), title=title, title_chars=TITLE_CHARS // 2)


def shared_range(frames: list[pd.DataFrame]) -> tuple[float, float] | None:
    """(min, max) over the finite values of several frames: one colour scale for heatmaps shown together."""
    values = np.concatenate([f.to_numpy(dtype=float).ravel() for f in frames]) if frames else np.array([])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else None


GEOMETRY_LABELS = {"centroid_cosine": "centroid cosine similarity", "centroid_l2": "centroid L2 distance",
                   "paired_cosine": "cosine of paired translations", "cka": "linear CKA"}


def per_layer(geo: pd.DataFrame, metric: str, variety: str, models: Sequence[str], title: str) -> go.Figure:
    """``metric`` of one dialect vs MSA per layer, one line per model (its colour and dash)."""
    df = geo[(geo["variety"] == variety)].dropna(subset=[metric])
    fig = go.Figure()
    for m in models:
        g = df[df["model"] == m]
        if g.empty:
            continue
        layer = [int(s.split(".")[1]) for s in g["site"]]
        order = np.argsort(layer)
        fig.add_trace(go.Scatter(x=np.asarray(layer)[order], y=g[metric].to_numpy()[order], mode="lines+markers",
                                 name=m, line=model_style(m, models),
                                 hovertemplate=f"{m}<br>layer %{{x}}: %{{y:.4g}}<extra></extra>"))
    fig.update_xaxes(title="decoder layer", dtick=1)
    fig.update_yaxes(title=GEOMETRY_LABELS.get(metric, metric))
    return _style(fig, height=340, title=title)


# ---------------------------------------------------------------- headline


def delta_limit(deltas: pd.DataFrame, systems: Sequence[str] | None = None, floor: float = 1.0) -> float:
    """One symmetric bound for every Δ colour scale and axis of the experiment: the largest |Δ| or interval end
    over ``systems`` (default: every system but the base) and all directions, rounded up to a whole number."""
    if deltas is None or deltas.empty:
        return floor
    d = deltas[deltas["system"].isin(systems)] if systems else deltas[deltas["system"] != "base"]
    vals = d[["delta", "low", "high"]].to_numpy(dtype=float)
    vals = vals[np.isfinite(vals)]
    return float(max(floor, math.ceil(np.abs(vals).max()))) if vals.size else floor


def delta_bars(deltas: pd.DataFrame, order: Sequence[str], title: str, limit: float) -> go.Figure:
    """Δ chrF++ per direction with its 95% interval, on the fixed axis ±``limit``; ``deltas`` holds one arm's rows
    for the directions to draw, ``order`` the direction labels in display order."""
    d = deltas.copy()
    d["label"] = [f"{short_name(s)} → {short_name(t)}" for s, t in zip(d["src"], d["tgt"])]
    d = d.set_index("label").reindex([x for x in order if x in set(d["label"])]).reset_index()
    if "reading" in d and d["reading"].notna().all():      # beyond the noise floor too, with several seeds
        colours = [{"better": "#2166ac", "worse": "#b2182b"}.get(r, "#999999") for r in d["reading"]]
    else:
        colours = ["#2166ac" if lo > 0 else "#b2182b" if hi < 0 else "#999999" for lo, hi in zip(d["low"], d["high"])]
    fig = go.Figure(go.Bar(x=d["label"], y=d["delta"], marker_color=colours,
                           error_y={"type": "data", "symmetric": False, "array": d["high"] - d["delta"],
                                    "arrayminus": d["delta"] - d["low"]},
                           customdata=np.stack([d["low"], d["high"]], axis=-1) if len(d) else None,
                           hovertemplate="%{x}<br>Δ %{y:+.2f} [%{customdata[0]:+.2f}, %{customdata[1]:+.2f}]"
                                         "<extra></extra>"))
    fig.add_hline(y=0, line_color="#333", line_width=1)
    fig.update_yaxes(title="Δ chrF++", range=[-limit * 1.05, limit * 1.05])
    return _style(fig, height=320, title=title)


def dose_response(rows: pd.DataFrame) -> go.Figure:
    """The λ sweep: the mean Δ chrF++ over MSA → dialect directions (vs baseline, 95% interval whiskers) against λ,
    and beside it the share of outputs called MSA (leakage) and the post-hoc probe's accuracy. ``rows``:
    ``experiment.report.dose_response`` as a frame (the baseline is λ = 0 with Δ 0)."""
    r = rows.sort_values("lam")
    agg = [x if isinstance(x, dict) else {"delta": 0.0, "low": 0.0, "high": 0.0} for x in r["msa_to_dialect"]]
    d = np.array([x["delta"] for x in agg])
    lo, hi = np.array([x["low"] for x in agg]), np.array([x["high"] for x in agg])
    lam = [f"{x:g}" for x in r["lam"]]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Δ chrF++ MSA → dialect vs baseline",
                                                        "MSA leakage and post-hoc probe"))
    fig.add_trace(go.Scatter(x=lam, y=d.tolist(), mode="lines+markers", name="Δ chrF++", line={"color": MODEL_COLOURS[0]},
                             error_y={"type": "data", "symmetric": False, "array": hi - d, "arrayminus": d - lo}),
                  row=1, col=1)
    fig.add_hline(y=0, line_color="#333", line_width=1, row=1, col=1)
    fig.add_trace(go.Scatter(x=lam, y=r["called_msa"], mode="lines+markers", name="called MSA",
                             line={"color": MODEL_COLOURS[1]}), row=1, col=2)
    fig.add_trace(go.Scatter(x=lam, y=r["posthoc_accuracy"], mode="lines+markers", name="post-hoc probe accuracy",
                             line={"color": MODEL_COLOURS[2], "dash": "dash"}), row=1, col=2)
    fig.update_xaxes(title="λ", type="category")
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    return _style(fig, height=320)
