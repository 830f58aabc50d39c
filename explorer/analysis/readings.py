"""One computed sentence per figure of the app: what this run's figure shows, so that a reader is told, not left
to guess, whether a curve "settles" or a cloud is "pulled apart". Pure functions of the same tables the figures are
drawn from; model names are parameters (no "baseline"/"decoupled" assumed beyond defaults), so more models (seeds,
sweep arms) only mean more rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..data.varieties import HR, short_name
from .verdict import PROBE_MARGIN, UNSTABLE_DEG

SETTLED_DEG = 15.0     # consecutive refits closer than this (median): the subspace holds still


def subspace_motion(median_deg: float) -> str:
    """How the estimated subspace moves between consecutive accepted refits, given their median angle: "holds
    still" (≤ 15°), "moves noticeably" or "keeps moving" (> 45°, ``verdict.UNSTABLE_DEG``). The one wording of that
    number: Home's verdict and the Subspace page both say it with this function."""
    if median_deg > UNSTABLE_DEG:
        return "keeps moving"
    return "moves noticeably" if median_deg > SETTLED_DEG else "holds still"


def _f(x: float, fmt: str = "+.1f") -> str:
    return format(x, fmt) if x is not None and math.isfinite(x) else "—"


# ---------------------------------------------------------------- Home


def map_reading(frame: pd.DataFrame, system: str, kind: str, reference: str = "baseline") -> str:
    """``frame``: ``experiment.report.map_frame`` rows (name, delta, low, high, significant) of one arm and kind."""
    if frame is None or frame.empty:
        return f"No {kind} differences between {system} and {reference} to show."
    n = len(frame)
    up, down = int((frame["delta"] > 0).sum()), int((frame["delta"] < 0).sum())
    if "significant" in frame:     # the backend's reading: interval excludes zero and beyond the noise floor
        sig = frame["significant"].astype(bool)
        sig_up, sig_down = int((sig & (frame["delta"] > 0)).sum()), int((sig & (frame["delta"] < 0)).sum())
        how = "read better or worse: interval excludes zero, beyond the noise floor"
    else:
        sig_up, sig_down = int((frame["low"] > 0).sum()), int((frame["high"] < 0).sum())
        how = "with a 95% interval that excludes zero"
    best, worst = frame.loc[frame["delta"].idxmax()], frame.loc[frame["delta"].idxmin()]
    ext = (f"largest gain {short_name(best['variety'])} {best['delta']:+.1f}, largest loss "
           f"{short_name(worst['variety'])} {worst['delta']:+.1f}" if best["delta"] > 0 > worst["delta"] else
           f"from {short_name(worst['variety'])} {worst['delta']:+.1f} to {short_name(best['variety'])} "
           f"{best['delta']:+.1f}")
    return (f"{kind}: {system} is above {reference} in {up} of {n} dialects and below in {down} ({sig_up} and "
            f"{sig_down} {how}); {ext}.")


# ---------------------------------------------------------------- Subspace


def reference_model(models: Sequence[str], model: str, reference: str = "baseline") -> str:
    """The model ``model`` is compared with: the ``reference`` arm's model of the same seed ("decoupled.s1" ->
    "baseline.s1"), else its first seed, else the untuned "base" (a run without that arm). Never a bare arm name:
    models are named ``<arm>.s<seed>``."""
    arm, sep, seed = model.rpartition(".s")
    same = f"{reference}.s{seed}" if sep and seed.isdigit() else None
    if same in models:
        return same
    return next((m for m in models if m == reference or m.rpartition(".s")[0] == reference),
                "base" if "base" in models else model)


def angles_reading(refits: pd.DataFrame, drawn: bool = False) -> str:
    """``refits``: ``ExperimentView.refits`` (step, angle_prev_deg, angle_first_deg). ``drawn``: the arm draws
    random subspaces (the control) rather than fitting them."""
    if refits is None or refits.empty:
        return "No refits recorded."
    if "accepted" in refits and not refits["accepted"].astype(bool).any():
        return (f"The gate accepted none of the {refits['step'].nunique()} refits: no subspace was ever in force, so "
                "there is no movement to track.")
    prev = refits["angle_prev_deg"].dropna()
    first = refits.sort_values("step")["angle_first_deg"].dropna()
    if prev.empty:
        return (f"Only {refits['step'].nunique()} refit recorded, so there is no movement to measure"
                + (" (this arm draws a random subspace: its angles say nothing about MSA)." if drawn else "."))
    med = float(prev.median())
    last = float(first.iloc[-1]) if len(first) else float("nan")
    if drawn:
        return (f"Random draws: consecutive subspaces are {med:.0f}° apart on median, as unrelated random "
                "directions in many dimensions are; nothing here is an estimate of MSA.")
    judged = {"keeps moving": "the subspace keeps moving, so after each refit the penalty pushes on a different "
                              "direction",
              "moves noticeably": "the subspace moves noticeably at each refit",
              "holds still": "the subspace holds still: the model keeps MSA in a stable place"}[subspace_motion(med)]
    return (f"Consecutive refits are {prev.min():.0f}°–{prev.max():.0f}° apart (median {med:.0f}°) and the last "
            f"estimate is {_f(last, '.0f')}° from the first: {judged}.")


def probe_reading(refits: pd.DataFrame, per: pd.DataFrame, chance: float) -> str:
    """``refits``: overall held-out accuracy per refit; ``per``: ``ExperimentView.refit_varieties``; ``chance``: the
    accuracy of always answering the larger class (``verdict.probe_chance``)."""
    fitted = refits.dropna(subset=["accuracy"]) if refits is not None and not refits.empty else pd.DataFrame()
    if fitted.empty:
        return "No probe was fitted (the random control draws its subspace instead)."
    step = int(fitted["step"].max())
    acc = float(fitted.loc[fitted["step"] == step, "accuracy"].mean())
    if math.isfinite(chance):
        judged = ("at chance: it finds no MSA direction" if acc - chance < PROBE_MARGIN else
                  f"{acc - chance:+.2f} above chance")
        head = f"At the last refit (step {step}) the probe is right on {acc:.2f} of held-out tokens against " \
               f"{chance:.2f} for always guessing the larger class: {judged}"
    else:
        head = f"At the last refit (step {step}) the probe is right on {acc:.2f} of held-out tokens"
    last = per[per["step"] == step] if per is not None and not per.empty else pd.DataFrame()
    dialects = last[last["variety"] != HR].dropna(subset=["accuracy"]) if len(last) else last
    if len(dialects):
        lo = dialects.loc[dialects["accuracy"].idxmin()]
        tail = (f"; per dialect from {short_name(lo['variety'])} {lo['accuracy']:.2f}"
                + (" (most of its tokens are called MSA)" if lo["accuracy"] < 0.5 else "")
                + f" to {short_name(dialects.loc[dialects['accuracy'].idxmax(), 'variety'])} "
                  f"{dialects['accuracy'].max():.2f}")
    else:
        tail = ""
    return head + tail + "."


def gate_reading(refits: pd.DataFrame) -> str:
    """``refits``: ``ExperimentView.refits`` of one model (accepted, gate_reason, gate_threshold). What the probe
    gate decided: before the first accepted refit no penalty applies; none accepted means plain fine-tuning."""
    if refits is None or refits.empty:
        return "No refits recorded."
    if "accepted" not in refits or refits["accuracy"].isna().all():
        return (f"The random control draws its subspace at {refits['step'].nunique()} steps (the decoupled arm's "
                "accepted refits); it has no probe for a gate to judge.")
    by_step = refits.groupby("step")["accepted"].all()
    ok = by_step[by_step]
    if "gate_threshold" in refits and refits["gate_threshold"].isna().all():
        return f"No probe gate in this run: all {len(by_step)} refits were used as fitted."
    if ok.empty:
        reasons = ", ".join(dict.fromkeys(str(r) for r in refits["gate_reason"] if r))
        return (f"The gate rejected all {len(by_step)} refits ({reasons}): no MSA direction was found above chance, "
                "so no penalty ever applied and this model is plain fine-tuning.")
    first = int(ok.index.min())
    return (f"The gate accepted {len(ok)} of {len(by_step)} refits; the penalty applies from step {first} (the first "
            "accepted one)" + (", and before that the model trained without it." if first > 0 else "."))


def penalty_reading(frame: pd.DataFrame) -> str:
    """``frame``: ``ExperimentView.penalties``. The last penalty of each arm, mean over its seeds: the decoupled arm
    against its matched random control."""
    if frame is None or frame.empty or frame["penalty"].isna().all():
        return "No penalty was ever applied in this run (no accepted subspace)."
    parts = []
    for arm, g in frame.dropna(subset=["penalty"]).groupby("arm", sort=False):
        first = g.sort_values("step").groupby("model")["penalty"].first().mean()
        last = g.sort_values("step").groupby("model")["penalty"].last().mean()
        n = g["model"].nunique()
        parts.append(f"{arm} {first:.3g} → {last:.3g} ({n} seed{'s' if n > 1 else ''})")
    return "Penalty from its first to its last step, mean over seeds: " + "; ".join(parts) + "."


def posthoc_reading(probes: pd.DataFrame, energy: pd.DataFrame, models: Sequence[str], site: str) -> str:
    """``probes``: ``ExperimentView.posthoc``; ``energy``: ``geometry_long`` rows. At each model's last checkpoint:
    how much energy is left in its MSA subspace against how well a fresh probe still reads MSA off its states."""
    parts = []
    for model in models:
        p = probes[(probes["model"] == model) & (probes["site"] == site)].sort_values("step")
        e = energy[(energy["model"] == model) & (energy["site"] == site)].groupby("step")["energy_share_mean"].mean()
        if p.empty:
            continue
        acc = float(p["accuracy"].iloc[-1])
        en = float(e.dropna().iloc[-1]) if e.notna().any() else float("nan")
        parts.append(f"{model} energy {_f(en, '.3f')}, probe {acc:.2f}")
    if not parts:
        return f"No post-hoc probes at {site} yet: build the representations."
    accs = probes[probes["site"] == site]
    accs = accs[accs["model"].isin(models)].sort_values("step").groupby("model")["accuracy"].last()
    judged = ("a fresh probe still reads MSA off every model well above chance (0.5): the penalty moved the "
              "mean, the information stays" if (accs > 0.5 + PROBE_MARGIN).all() else
              "a fresh probe is at chance for every model: there is no linearly readable MSA signal here"
              if (accs < 0.5 + PROBE_MARGIN).all() else
              "a fresh probe reads MSA off some models and not others")
    return f"At the last checkpoint ({site}): " + "; ".join(parts) + f" — {judged}."


def subspace_source(subspaces: Mapping[str, tuple[str, int]], folder: str = "") -> str:
    """Which MSA subspace the Translate switch removes: ``subspaces`` is site -> (kind, step) of the model's
    ``ExperimentView.projection`` ("probe": the decoupled arm's own training refit; "posthoc": a probe fitted on
    that model's states after training)."""
    if not subspaces:
        return ("no subspace yet: build representations (`python -m explorer represent"
                + (f" {folder}" if folder else "") + "`) to fit one on this model's states")
    parts = []
    for site, (kind, step) in subspaces.items():
        if kind == "probe":
            parts.append(f"this model's own training subspace, refit at step {step} ({site})")
        elif kind == "posthoc":
            parts.append(f"a probe fitted on this model's states at step {step} ({site})")
        else:
            parts.append(f"a {kind} subspace from step {step} ({site})")
    return "; ".join(parts)


def energy_reading(heats: Mapping[str, pd.DataFrame]) -> str:
    """``heats``: model -> ``ExperimentView.energy_heatmap`` (variety × step). Compares how the dialects' share
    inside the MSA subspace changes from the first to the last checkpoint with how MSA's own share changes."""
    parts = []
    for name, heat in heats.items():
        h = heat.dropna(axis=1, how="all")
        if h.shape[1] < 2 or HR not in h.index:
            continue
        first, last = h.iloc[:, 0], h.iloc[:, -1]
        dia = [v for v in h.index if v != HR]
        d0, d1 = float(np.nanmean(first[dia])), float(np.nanmean(last[dia]))
        m0, m1 = float(first[HR]), float(last[HR])
        rd, rm = (d1 - d0) / d0 if d0 else float("nan"), (m1 - m0) / m0 if m0 else float("nan")
        if not (math.isfinite(rd) and math.isfinite(rm)):
            continue
        diff = rd - rm
        if rd < -0.05 and diff < -0.1:
            judged = "the dialects fall more than MSA: they are being separated from it"
        elif rd < -0.05 and rm < -0.05:
            judged = "every row falls alike, MSA included: the whole direction shrinks, dialects are not singled out"
        elif rd > 0.05 and diff > 0.1:
            judged = "the dialects move further into the MSA subspace than MSA itself"
        elif rd > 0.05 and rm > 0.05:
            judged = "every row rises alike, MSA included"
        else:
            judged = "the dialects barely change"
        parts.append(f"{name}: dialects {d0:.3f} → {d1:.3f} ({rd:+.0%}), MSA {m0:.3f} → {m1:.3f} ({rm:+.0%}); "
                     f"{judged}")
    return ("; ".join(parts) + ".") if parts else "Not enough checkpoints with an MSA subspace to compare."


def layers_reading(geo: pd.DataFrame, metric: str, label: str, variety: str, step: int,
                   models: Sequence[str]) -> str:
    """``geo``: ``ExperimentView.geometry_long`` rows of one dialect (``variety``) at the chosen checkpoint (plus
    the base at step 0); compares each model's ``metric`` with the first model's, layer by layer."""
    g = geo[(geo["variety"] == variety)].dropna(subset=[metric])
    have = [m for m in models if m in set(g["model"])]
    if len(have) < 2:
        return f"Only {', '.join(have) or 'no model'} has {label} for {short_name(variety)} at step {step}."
    ref = g[g["model"] == have[0]].set_index("site")[metric]
    parts = []
    for m in have[1:]:
        other = g[g["model"] == m].set_index("site")[metric]
        diff = (other - ref).dropna()
        if diff.empty:
            continue
        site = diff.abs().idxmax()
        parts.append(f"{m} differs from {have[0]} by at most {diff.abs().max():.3g} (at {site}, {diff[site]:+.3g})")
    spread = float(g[metric].max() - g[metric].min())
    scale = (" — all values lie within " + format(spread, ".3g") + ", so the lines look apart only because the "
             "axis is zoomed in") if spread < 0.02 * max(1e-12, float(g[metric].abs().max())) else ""
    return f"{short_name(variety)}, {label}, step {step}: " + "; ".join(parts) + scale + "."


# ---------------------------------------------------------------- Embeddings


def msa_distances(geo: pd.DataFrame, model: str, step: int, site: str) -> pd.DataFrame:
    """Per dialect, how far it sits from MSA in ``model`` at ``step`` and ``site``: 1 − cosine of paired
    translations (mean over sentences), 1 − cosine of the centroids, and the centroid L2 distance; a last row
    "mean" averages the dialects."""
    g = geo[(geo["model"] == model) & (geo["step"] == step) & (geo["site"] == site) & (geo["variety"] != HR)]
    out = pd.DataFrame({"dialect": [short_name(v) for v in g["variety"]],
                        "paired 1 − cos": 1 - g["paired_cosine"].to_numpy(float),
                        "centroid 1 − cos": 1 - g["centroid_cosine"].to_numpy(float),
                        "centroid L2": g["centroid_l2"].to_numpy(float)})
    if len(out):
        out.loc[len(out)] = ["mean", *out.iloc[:, 1:].mean().tolist()]
    return out


def seed_distances(geo: pd.DataFrame, models: Mapping[str, int], site: str) -> pd.DataFrame:
    """One row per model (every seed of every arm) at its step in ``models`` (model -> step): the "mean" row of
    ``msa_distances`` (dialects averaged), so that seeds of one arm can be compared with each other and with
    another arm: a difference between arms smaller than between seeds of one arm is noise."""
    rows = []
    for model, step in models.items():
        t = msa_distances(geo, model, step, site)
        if len(t):
            rows.append({"model": model, "step": step, **t.iloc[-1, 1:].to_dict()})
    return pd.DataFrame(rows, columns=["model", "step", "paired 1 − cos", "centroid 1 − cos", "centroid L2"])


def embedding_reading(tables: Mapping[str, pd.DataFrame], site: str) -> str:
    """Compares the mean dialect-to-MSA distance (paired 1 − cos) of the models shown side by side."""
    means = {name: float(t.loc[t["dialect"] == "mean", "paired 1 − cos"].iloc[0])
             for name, t in tables.items() if len(t) and (t["dialect"] == "mean").any()}
    if not means:
        return "No distances for these models at this checkpoint and layer."
    text = "; ".join(f"{n} {v:.3g}" for n, v in means.items())
    if len(means) >= 2:
        (a, va), (b, vb) = list(means.items())[:2]
        if va > 0 and math.isfinite(vb):
            rel = (vb - va) / va
            how = ("further from" if rel > 0.05 else "closer to" if rel < -0.05 else "about as far from")
            return (f"At {site}, dialects sit on average {text} from their MSA translations (1 − cosine): {b} puts "
                    f"them {how} MSA than {a} ({rel:+.0%}).")
    return f"At {site}, dialects sit on average {text} from their MSA translations (1 − cosine)."


# ---------------------------------------------------------------- Error analysis


def errors_reading(shown: pd.DataFrame, total: int, models: Sequence[str], delta_of: tuple[str, str] | None) -> str:
    """What the filtered rows hold: wins and losses of the Δ pair, flagged outputs and suspicious test pairs."""
    n = len(shown)
    if n == 0:
        return f"No translation matches these filters (of {total})."
    bits = [f"{n} of {total} translations"]
    if delta_of and shown["delta"].notna().any():
        a, b = delta_of
        bits.append(f"{a} beats {b} on {int((shown['delta'] > 0).sum())} and loses on "
                    f"{int((shown['delta'] < 0).sum())}")
    cols = [f"flags_{m}" for m in models if f"flags_{m}" in shown]
    flat = pd.concat([shown[c] for c in cols]) if cols else pd.Series(dtype=str)
    counts = flat[flat != ""].str.split(", ").explode().value_counts() if len(flat) else pd.Series(dtype=int)
    if len(counts):
        bits.append("flagged outputs: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    pairs = int((shown["pair_flags"] != "").sum()) if "pair_flags" in shown else 0
    if pairs:
        bits.append(f"{pairs} test pair{'s' if pairs > 1 else ''} with source = reference")
    return "; ".join(bits) + "."
