"""What an experiment shows: the summary (``summary --json`` and the CLI table) and the app's headline table and map.

Every number is read against the training noise: chrF++ per arm is the mean ± sd over its seeds, every Δ against
the baseline carries a seed-aware interval and a one-word reading, and the baseline's noise floor (the largest
difference between two of its seeds) stands beside it.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd

from ..analysis.repcache import read_represent_manifest
from ..analysis.verdict import penalised_site, posthoc_at_penalised_site
from ..config import RunConfig
from ..data.varieties import HR, KINDS, VARIETIES, dialect_of, direction_kind, direction_label, variety
from ..evaluation.chrf import chrf_signature
from ..files import file_status, read_json
from ..names import arm_kind, arm_lam, parse_model
from .evaluate import AGGREGATES as AGGREGATE_KINDS
from .integrity import Problem, check, done_stages, repair_command
from .layout import Experiment, arm_models


def _arm_stats(models: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """arm -> direction -> mean, sd (ddof 1; None with one seed), per_seed chrF++."""
    per: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for model, dirs in models.items():
        if model == "base":
            continue
        arm, seed = parse_model(model)
        for d, v in dirs.items():
            per[arm][d][seed] = v["chrf"]
    out: dict[str, dict[str, dict]] = {}
    for arm, dirs in per.items():
        out[arm] = {}
        for d, by_seed in dirs.items():
            x = np.array(list(by_seed.values()), dtype=float)
            out[arm][d] = {"mean": round(float(x.mean()), 4),
                           "sd": round(float(x.std(ddof=1)), 4) if len(x) > 1 else None,
                           "per_seed": {str(s): v for s, v in sorted(by_seed.items())}}
    return out


def summary(exp: Experiment) -> dict:
    """Results as one JSON-ready dict: chrF++ per model and direction, per arm (mean ± sd over seeds), Δ vs baseline
    with seed-aware intervals and the noise floor, what the outputs look like (dialect and MSA classifiers), refits
    and the gate's decisions."""
    m = exp.manifest()
    cfg = exp.config()
    out = {"experiment": str(exp.root), "code_version": m["code_version"], "config": m["config"],
           "format_version": m["format_version"], "seeds": list(cfg.seeds), "signature": chrf_signature(),
           "models": {}, "arms": {}, "deltas": {}, "noise_floor": {}, "interval": None, "looks_like": {},
           "classifiers": {}, "refits": {}, "complete": False}
    bad, out["problems"] = _unusable(exp, cfg)
    if out["problems"]:
        out["repair"] = repair_command(exp)
    for model in ["base", *arm_models(cfg)]:
        p = exp.scores_path(model)
        if p.exists() and p not in bad and exp.hyps_path(model) not in bad:
            doc = read_json(p)
            out["models"][model] = doc["directions"]
            if doc.get("looks_like"):
                out["looks_like"][model] = doc["looks_like"]
    out["arms"] = _arm_stats(out["models"])
    # a Δ stands on every seed of its arm and of the baseline: one unusable evaluation takes it out
    lost = {parse_model(mo)[0] for mo in ["base", *arm_models(cfg)]
            if exp.scores_path(mo) in bad or exp.hyps_path(mo) in bad}
    if exp.deltas_path.exists() and exp.deltas_path not in bad and "baseline" not in lost:
        doc = read_json(exp.deltas_path)
        out["deltas"] = {k: v for k, v in doc["systems"].items() if k not in lost}
        out["noise_floor"] = doc.get("noise_floor", {})
        out["interval"] = doc.get("interval", "sentences")
        # system -> kind -> mean Δ over the kind's directions
        out["aggregate"] = {k: v for k, v in doc.get("aggregate", {}).items() if k not in lost}
        out["aggregate_noise_floor"] = {k: v["noise_floor"] for k, v in doc.get("aggregates", {}).items()}
    cp = exp.copy_source_path
    out["copy_source"] = read_json(cp)["directions"] if cp.exists() and cp not in bad else {}
    if exp.classifiers_path.exists() and exp.classifiers_path not in bad:
        out["classifiers"] = read_json(exp.classifiers_path)
    out["posthoc"] = _posthoc_last(exp, cfg)
    for model in arm_models(cfg):
        if exp.stage_dir(model) / "refits.jsonl" in bad:
            continue
        refits = exp.refits(model)
        if refits or arm_kind(parse_model(model)[0]) != "baseline":
            out["refits"][model] = {"total": len(refits), "accepted": sum(1 for r in refits if r.get("accepted", True))}
    out["stages"] = dict(m.get("stages", {}))
    out["complete"] = all(exp.stage_done(exp.stage_key("eval", k)) for k in ["base", *arm_models(cfg)])
    return out


def _unusable(exp: Experiment, cfg) -> tuple[set, list[str]]:
    """The files the summary reads (and those its numbers were computed from: the hypotheses) that are missing or
    damaged: (their paths, one line each)."""
    keys = [k for k in done_stages(exp, cfg) if k.startswith("eval:")]
    problems = check(exp, cfg, keys)
    shared = [exp.deltas_path, exp.copy_source_path, exp.classifiers_path,
              *(exp.stage_dir(mo) / "refits.jsonl" for mo in arm_models(cfg))]
    for path in shared:
        status = file_status(path)
        if status.state == "damaged":     # a missing one was not written yet (an unfinished run): nothing to say
            problems.append(Problem("summary", status))
    return {p.status.path for p in problems}, [p.describe(exp.root) for p in problems]


def _posthoc_last(exp: Experiment, cfg) -> dict[str, dict[str, float]]:
    """model -> site -> held-out accuracy of its post-hoc probe at its last checkpoint (empty before ``represent``)."""
    try:
        man = read_represent_manifest(exp.represent_dir)
    except Exception:  # noqa: BLE001 - a damaged cache is reported by the view; the summary just leaves it out
        return {}
    if not man:
        return {}
    out: dict[str, dict[str, float]] = {}
    last: dict[str, int] = {}
    for entry in man.get("entries", {}).values():
        m, step = entry["model"], entry["step"]
        if entry.get("probes") and step >= last.get(m, -1):
            last[m] = step
            out[m] = {site: rec["accuracy"] for site, rec in entry["probes"]["sites"].items()}
    return out


def dose_response(s: dict) -> list[dict]:
    """One row per decoupled arm, by λ: the mean Δ chrF++ vs baseline over MSA→dialect and over dialect→MSA
    directions (with interval and reading), MSA leakage and the as-requested share (mean over seeds and directions),
    and the post-hoc probe's accuracy at the penalised site at the last checkpoint (mean over seeds; how much MSA
    information is still there). The baseline is the λ = 0 reference row without Δ."""
    lam = s["config"].get("lam", RunConfig.lam)        # the run's λ (older summaries: the option's default)
    arms = [a for a in s["arms"] if arm_kind(a) == "decoupled"]
    pen = penalised_site(s)
    rows = []
    for arm in ["baseline", *sorted(arms, key=lambda a: arm_lam(a, lam))]:
        if arm not in s["arms"]:
            continue
        models = [m for m in s["looks_like"] if m != "base" and parse_model(m)[0] == arm]
        looks = [v for m in models for v in s["looks_like"][m]["directions"].values()]
        probes = [acc for m, sites in s.get("posthoc", {}).items() if m in models or parse_model(m)[0] == arm
                  for site, acc in sites.items() if pen is None or site == pen]
        row = {"arm": arm, "lam": 0.0 if arm == "baseline" else arm_lam(arm, lam),
               "called_msa": _mean([v["called_msa"] for v in looks]),
               "as_requested": _mean([v["as_requested"] for v in looks]), "posthoc_accuracy": _mean(probes)}
        for kind in ("msa_to_dialect", "dialect_to_msa"):
            x = s.get("aggregate", {}).get(arm, {}).get(kind)
            row[kind] = x
        rows.append(row)
    return rows


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _delta_cells(x: dict | None, floor: dict | None, n_seeds: int) -> str:
    """``summary_table``'s "Δ decoupled [95% CI] reading" and "noise" cells of one row (empty without a Δ)."""
    if not x:
        return ""
    text = f"   {x['delta']:+6.2f} [{x['low']:+.2f}, {x['high']:+.2f}] {x.get('reading', '')}"
    return text + (f"   {_fmt(floor['max_abs'] if floor else None)}" if n_seeds > 1 else "")


def _mean_lines(s: dict, arms: list[str], dirs: list[str], cell: int, n_seeds: int) -> list[str]:
    """``summary_table``'s "mean m→d" / "mean d→m" rows: per kind with several directions, the base's and each arm's
    mean chrF++ over those directions (per seed, then mean ± sd over seeds), and the copy bar's mean."""
    out = []
    for key, label in (("msa_to_dialect", "mean m→d"), ("dialect_to_msa", "mean d→m")):
        kind_dirs = [d for d in dirs if direction_kind(*d.split("-", 1)) == AGGREGATE_KINDS[key]]
        if len(kind_dirs) < 2:
            continue
        base = [s["models"].get("base", {}).get(d, {}).get("chrf") for d in kind_dirs]
        row = f"{label:<10}{_fmt(_mean(base) if None not in base else None):>8}"
        for a in arms:
            seeds = [seed for seed in s["arms"][a].get(kind_dirs[0], {}).get("per_seed", {})
                     if all(seed in s["arms"][a].get(d, {}).get("per_seed", {}) for d in kind_dirs)]
            x = np.array([np.mean([s["arms"][a][d]["per_seed"][seed] for d in kind_dirs]) for seed in seeds])
            txt = _fmt(float(x.mean()) if len(x) else None)
            if n_seeds > 1:
                txt += f"±{_fmt(float(x.std(ddof=1)) if len(x) > 1 else None, '.1f')}"
            row += f"{txt:>{cell}}"
        copy = [s.get("copy_source", {}).get(d, {}).get("chrf") for d in kind_dirs]
        row += f"{_fmt(_mean(copy) if None not in copy else None):>10}"
        row += _delta_cells(s.get("aggregate", {}).get("decoupled", {}).get(key),
                            s.get("aggregate_noise_floor", {}).get(key), n_seeds)
        out.append(row)
    return out


def summary_table(s: dict) -> str:
    """A readable table: one row per direction, the base and each arm (mean ± sd over seeds), copying the source,
    Δ decoupled vs baseline [95% interval] with its reading, and the noise floor; then what the outputs look like."""
    arms = list(s["arms"])
    dirs = sorted({d for m in s["models"].values() for d in m})
    copy = s.get("copy_source", {})
    n_seeds = len(s.get("seeds", [])) or 1
    cell = max(16 if n_seeds > 1 else 10, *(len(a) + 2 for a in arms)) if arms else 10    # a sweep arm's long name
    head = (f"{'direction':<10}{'base':>8}" + "".join(f"{a:>{cell}}" for a in arms) + f"{'copy src':>10}"
            + "   Δ decoupled [95% CI] reading" + ("   noise" if n_seeds > 1 else ""))
    lines = [*_problem_lines(s), head, "-" * len(head)]
    for d in dirs:
        base = s["models"].get("base", {}).get(d, {}).get("chrf")
        row = f"{d:<10}{_fmt(base):>8}"
        for a in arms:
            st = s["arms"][a].get(d, {})
            txt = _fmt(st.get("mean")) + (f"±{_fmt(st.get('sd'), '.1f')}" if n_seeds > 1 else "")
            row += f"{txt:>{cell}}"
        row += f"{_fmt(copy.get(d, {}).get('chrf')):>10}"
        row += _delta_cells(s.get("deltas", {}).get("decoupled", {}).get(d), s.get("noise_floor", {}).get(d), n_seeds)
        lines.append(row)
    lines += _mean_lines(s, arms, dirs, cell, n_seeds)
    lines.append(f"chrF++ signature: {s['signature']}")
    if n_seeds > 1:
        lines.append(f"{n_seeds} seeds per arm: chrF++ is mean±sd over seeds; noise = largest |Δ| between two "
                     "baseline seeds; 95% CI: two-level bootstrap over seeds and test sentences")
    else:
        lines.append("one seed: 95% CI from resampling test sentences only (it does not include training noise)")
    lines.append("copy src: the source itself as the output (the bar a model must clear between close varieties)")
    agg = s.get("aggregate", {})
    if agg:
        lines.append("")
        lines.append("mean Δ over directions (vs baseline)     MSA→dialect                      dialect→MSA")
        for system, kinds in agg.items():
            cells = []
            for kind in ("msa_to_dialect", "dialect_to_msa"):
                x = kinds.get(kind)
                cells.append(f"{x['delta']:+6.2f} [{x['low']:+.2f}, {x['high']:+.2f}] {x['reading']:<12}" if x
                             else f"{'—':<32}")
            lines.append(f"{system:<40}" + " ".join(cells))
        floors = s.get("aggregate_noise_floor", {})
        if any(floors.values()):
            lines.append(f"{'noise floor (baseline seed vs seed)':<40}"
                         + " ".join(f"{_fmt(f['max_abs'] if f else None):<32}" for f in
                                    (floors.get("msa_to_dialect"), floors.get("dialect_to_msa"))))
    looks = s.get("looks_like", {})
    if looks:
        lines.append("")
        lines.append(f"{'MSA→dialect outputs':<22}{'as requested':>14}{'called MSA':>12}{'identical':>11}")
        for name, group in _looks_groups(s):
            req = [v["as_requested"] for m in group for v in looks[m]["directions"].values()]
            msa = [v["called_msa"] for m in group for v in looks[m]["directions"].values()]
            ident = [looks[m].get("identical_across_targets") for m in group]
            ident = [x for x in ident if x is not None]
            lines.append(f"{name:<22}{_fmt(_mean(req), '.1%'):>14}{_fmt(_mean(msa), '.1%'):>12}"
                         f"{_fmt(_mean(ident), '.1%'):>11}")
        ref = s.get("classifiers", {}).get("references")
        if ref:
            req = [v["as_requested"] for v in ref["directions"].values()]
            msa = [v["called_msa"] for v in ref["directions"].values()]
            lines.append(f"{'references (ceiling)':<22}{_fmt(_mean(req), '.1%'):>14}{_fmt(_mean(msa), '.1%'):>12}")
        cl = s.get("classifiers", {})
        if cl:
            lines.append(f"as requested: dialect classifier ({cl['dialect_id']['accuracy']:.0%} accurate on the test "
                         f"split); called MSA: MSA-vs-dialect classifier ({cl['msa_vs_dialect']['balanced_accuracy']:.0%}"
                         " balanced accuracy); identical: sentences whose outputs are the same for every target")
    if any(arm_kind(a) == "decoupled" and a != "decoupled" for a in s["arms"]):
        lines.append("")
        lines.append(f"{'dose-response: λ':<18}{'Δ MSA→dialect [95% CI]':<32}{'called MSA':>11}{'as requested':>14}"
                     f"{'post-hoc probe':>16}")
        for r in dose_response(s):
            x = r["msa_to_dialect"]
            cell = f"{x['delta']:+6.2f} [{x['low']:+.2f}, {x['high']:+.2f}]" if x else "(reference)"
            lines.append(f"{r['lam']:<18g}{cell:<32}{_fmt(r['called_msa'], '.1%'):>11}"
                         f"{_fmt(r['as_requested'], '.1%'):>14}{_fmt(r['posthoc_accuracy'], '.2f'):>16}")
    lines += _posthoc_lines(s)
    refits = s.get("refits", {})
    if refits:
        lines.append("probe refits (accepted/total): "
                     + ", ".join(f"{m}={v['accepted']}/{v['total']}" for m, v in refits.items()))
    return "\n".join(lines)


def _problem_lines(s: dict) -> list[str]:
    """The summary's warning, first: the files it could not use, that the numbers below leave them out, and the
    command that rebuilds them."""
    problems = s.get("problems") or []
    if not problems:
        return []
    return [f"WARNING: {len(problems)} file(s) damaged or missing; the numbers below exclude them (and every Δ "
            "that stands on them):", *(f"  - {p}" for p in problems),
            f"Rebuild them with: {s.get('repair', 'the same `python -m explorer run ...`')}", ""]


def _posthoc_lines(s: dict) -> list[str]:
    """``summary_table``'s post-hoc probe line: at the penalised site, each arm's held-out probe accuracy at its last
    checkpoint (mean ± sd over seeds), the base's beside them: how much MSA is still linearly readable."""
    site, probes = posthoc_at_penalised_site(s)
    cells = [f"{a} {m:.2f}" + (f"±{sd:.2f}" if sd is not None else "")
             for a, (m, sd) in ((a, probes[a]) for a in ["base", *s["arms"]] if a in probes)]
    if not cells:
        return []
    return ["", f"post-hoc probe at {site}, MSA vs dialect tokens (chance 0.50), last checkpoint: " + ", ".join(cells)]


def _looks_groups(s: dict) -> list[tuple[str, list[str]]]:
    looks = s.get("looks_like", {})
    groups: dict[str, list[str]] = defaultdict(list)
    for m in looks:
        groups["base" if m == "base" else parse_model(m)[0]].append(m)
    return list(groups.items())


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else None


# ---------------------------------------------------------------- the app's headline


_RANK = {v.code: i for i, v in enumerate(VARIETIES)}


def _order_key(src: str, tgt: str) -> tuple:
    return KINDS.index(direction_kind(src, tgt)), _RANK.get(dialect_of(src, tgt), 999)


def headline_table(scores: pd.DataFrame, deltas: pd.DataFrame, models: tuple[str, ...] | None = None,
                   copy_source: dict[str, float] | None = None,
                   aggregates: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per direction: chrF++ of the base and of each arm (mean over its seeds, with the sd across seeds
    when there are several), and each arm's Δ vs baseline with its 95% interval (``low <arm>``, ``high <arm>``:
    numbers; the page formats them), its reading and the noise floor;
    then, for MSA→dialect and dialect→MSA when they have several directions, a "mean of N directions" row
    (``mean`` True): each arm's mean over those directions (sd over seeds of that mean) and, from ``aggregates``
    (``ExperimentView.aggregate_deltas()``), the Δ of that mean with its joint interval and noise floor.

    ``scores`` and ``deltas`` are ``ExperimentView.scores()`` / ``.deltas()``; ``models`` limits the arms shown
    (model names or arm names; default: every arm in ``scores``); ``copy_source`` (direction -> chrF++ of the source
    itself as output) adds a "chrF++ copy src" column."""
    if scores.empty:
        return pd.DataFrame()
    arms = list(dict.fromkeys(a for a in scores["arm"] if a != "base"))
    if models is not None:
        wanted = {parse_model(m)[0] for m in models}
        arms = [a for a in arms if a in wanted]
    stats = scores.groupby(["direction", "src", "tgt", "arm"])["chrf"].agg(["mean", "std", "count"]).reset_index()
    rows = []
    for (d, src, tgt), g in stats.groupby(["direction", "src", "tgt"]):
        by = g.set_index("arm")
        row = {"direction": direction_label(src, tgt), "kind": direction_kind(src, tgt), "code": d,
               "variety": dialect_of(src, tgt)}
        row["chrF++ base"] = by["mean"].get("base")
        for a in arms:
            row[f"chrF++ {a}"] = by["mean"].get(a)
            if by["count"].get(a, 0) > 1:
                row[f"sd {a}"] = by["std"].get(a)
        if copy_source:
            row["chrF++ copy src"] = copy_source.get(d)
        for system in [a for a in arms if a != "baseline"]:
            x = deltas[(deltas["system"] == system) & (deltas["direction"] == d)] if not deltas.empty else deltas
            if len(x):
                x = x.iloc[0]
                row[f"Δ {system}"] = x["delta"]
                row[f"low {system}"], row[f"high {system}"] = float(x["low"]), float(x["high"])   # 95% interval
                row[f"reading {system}"] = x["reading"]
        if not deltas.empty:
            floor = deltas.loc[deltas["direction"] == d, "noise_floor"]
            if len(floor) and not pd.isna(floor.iloc[0]):
                row["noise floor"] = float(floor.iloc[0])
        row["_key"] = _order_key(src, tgt)
        row["mean"] = False
        rows.append(row)
    for kind in KINDS[:2]:
        codes = [r["code"] for r in rows if r["kind"] == kind]
        if len(codes) > 1:
            rows.append(_mean_row(kind, codes, scores, arms, copy_source, aggregates))
    return pd.DataFrame(rows).sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)


def _mean_row(kind: str, codes: list[str], scores: pd.DataFrame, arms: list[str],
              copy_source: dict[str, float] | None, aggregates: pd.DataFrame | None) -> dict:
    """The "mean of N directions" row of ``headline_table`` for one kind of direction."""
    sub = scores[scores["direction"].isin(codes)]
    per_seed = sub.groupby(["arm", "seed"], dropna=False)["chrf"].agg(["mean", "count"]).reset_index()
    per_seed = per_seed[per_seed["count"] == len(codes)]      # a seed missing a direction would skew the mean
    row: dict = {"direction": f"mean of {len(codes)} directions", "kind": kind, "code": "", "variety": "",
                 "mean": True, "_key": (KINDS.index(kind), 10_000)}
    for a in ["base", *arms]:
        x = per_seed.loc[per_seed["arm"] == a, "mean"]
        row[f"chrF++ {a}"] = float(x.mean()) if len(x) else None
        if a != "base" and len(x) > 1:
            row[f"sd {a}"] = float(x.std())
    if copy_source:
        vals = [copy_source.get(c) for c in codes]
        row["chrF++ copy src"] = float(np.mean(vals)) if all(v is not None for v in vals) else None
    if aggregates is not None and not aggregates.empty:
        for system in [a for a in arms if a != "baseline"]:
            x = aggregates[(aggregates["system"] == system) & (aggregates["kind"] == kind)]
            if len(x):
                x = x.iloc[0]
                row[f"Δ {system}"] = x["delta"]
                row[f"low {system}"], row[f"high {system}"] = float(x["low"]), float(x["high"])   # 95% interval
                row[f"reading {system}"] = x["reading"]
        floor = aggregates.loc[aggregates["kind"] == kind, "noise_floor"]
        if len(floor) and not pd.isna(floor.iloc[0]):
            row["noise floor"] = float(floor.iloc[0])
    return row


def map_frame(deltas: pd.DataFrame, system: str = "decoupled", kind: str = KINDS[0]) -> pd.DataFrame:
    """One row per dialect with a city: where it is and the Δ chrF++ of ``system`` vs baseline in ``kind``
    (``significant``: the reading is not "within noise")."""
    cols = ["variety", "name", "city", "country", "region", "lat", "lon", "delta", "low", "high", "significant"]
    if deltas.empty:
        return pd.DataFrame(columns=cols)
    d = deltas[deltas["system"] == system]
    rows = []
    for _, r in d.iterrows():
        if direction_kind(r["src"], r["tgt"]) != kind:
            continue
        v = variety(dialect_of(r["src"], r["tgt"]))
        if v.lat is None or v.code == HR:
            continue
        significant = (r["reading"] in ("better", "worse")) if isinstance(r.get("reading"), str) \
            else bool(r["low"] > 0 or r["high"] < 0)
        rows.append({"variety": v.code, "name": v.name, "city": v.city, "country": v.country, "region": v.region,
                     "lat": v.lat, "lon": v.lon, "delta": float(r["delta"]), "low": float(r["low"]),
                     "high": float(r["high"]), "significant": significant})
    return pd.DataFrame(rows, columns=cols)
