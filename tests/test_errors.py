"""Error analysis without a trained model: flags, copied share, the word diff, exports, the annotations file
(format 2, format 1 still read, unknown fields kept), the colour palette under colour-blindness simulation, the map's
fixed Δ scale and its labels."""

from __future__ import annotations

import html
import json
import math
import re

import pandas as pd
import pytest

from explorer.analysis import errors
from explorer.data.varieties import FLORES_CODES, VARIETIES, variety
from explorer.evaluation import dialect_id
from explorer.experiment.annotations import DEFAULT_TAGS, AnnotationsError, AnnotationStore, item_key
from explorer.ui import figures, maps, palette

MSA = "يقول المركز الوطني للأعاصير إنه لا يشكل أي تهديد"
EGY = "المركز الوطني للأعاصير بيقول إنه مش بيمثل أي تهديد"


def hyps_frame(models=("base", "baseline", "decoupled")) -> pd.DataFrame:
    """Three test rows in ``ExperimentView.hypotheses()`` format."""
    rows = [
        {"direction": "arb-arz", "src": "arb", "tgt": "arz", "sent_id": "s1", "source": MSA, "ref": EGY},
        {"direction": "arb-arz", "src": "arb", "tgt": "arz", "sent_id": "s2", "source": "كلمة اخرى هنا", "ref": "كلمة اخرى هنا"},
        {"direction": "arz-arb", "src": "arz", "tgt": "arb", "sent_id": "s1", "source": EGY, "ref": MSA},
    ]
    outs = {"base": [MSA, "", MSA], "baseline": [EGY, "كلمة اخرى هنا", "تهديد تهديد تهديد تهديد تهديد تهديد"],
            "decoupled": ["المركز بيقول مش تهديد", "كلمة", MSA]}
    chrf = {"base": [40.0, 0.0, 100.0], "baseline": [100.0, 100.0, 5.0], "decoupled": [30.0, 20.0, 100.0]}
    df = pd.DataFrame(rows)
    for m in models:
        df[f"hyp_{m}"], df[f"chrf_{m}"] = outs[m.split(".")[0]], chrf[m.split(".")[0]]
    return df


def test_copied_share_and_flags():
    assert errors.copied_share("a b c", "a b d") == pytest.approx(2 / 3)
    assert errors.copied_share("a a a", "a") == pytest.approx(1 / 3)          # counted with multiplicity
    assert math.isnan(errors.copied_share("  ", "a"))
    assert errors.copied_share("«مرحبا» يا", "مرحبا") == pytest.approx(0.5)   # punctuation is not a word
    assert errors.output_flags("", "a", "b") == (errors.FLAG_EMPTY,)
    assert errors.FLAG_REPEATS in errors.output_flags("x x x x x x y", "a b", "c d e f g h i")
    assert errors.FLAG_COPY in errors.output_flags(MSA, MSA, EGY)
    assert errors.FLAG_COPY not in errors.output_flags(EGY, MSA, EGY)
    assert errors.FLAG_LONG in errors.output_flags("a b c d e f g h i j k l", "a b", "x y z")
    assert errors.FLAG_SHORT in errors.output_flags("a", "a b c d e f", "q r s t u v w")
    assert errors.output_flags(EGY, MSA, EGY) == ()
    assert errors.pair_flags("كلمة  اخرى", "كلمة اخرى") == (errors.PAIR_SAME,)
    assert errors.pair_flags(MSA, EGY) == ()


def test_word_diff_never_mixes_the_reference_into_the_output():
    hyp = "المركز بيقول مش تهديد خالص"
    out_html, ref_html = errors.word_diff_html(hyp, EGY)
    plain = re.sub(r"<[^>]+>", "", out_html)
    assert plain == html.escape(hyp)                          # the output's own text, and only it
    assert re.sub(r"<[^>]+>", "", ref_html) == html.escape(EGY)
    marked_out = re.findall(r'<mark class="dde-extra">([^<]*)</mark>', out_html)
    marked_ref = re.findall(r'<mark class="dde-missing">([^<]*)</mark>', ref_html)
    assert "خالص" in marked_out and "المركز" not in marked_out     # whole words, the output's extra ones
    assert "الوطني" in marked_ref and "تهديد" not in marked_ref
    assert errors.word_diff_html(EGY, EGY) == (html.escape(EGY), html.escape(EGY))


def test_error_table_flags_pairs_and_generic_models():
    t = errors.error_table(hyps_frame(), ["base", "baseline", "decoupled"], None)
    assert list(t["pair_flags"]) == ["", errors.PAIR_SAME, ""]            # source = reference flagged
    assert t.loc[0, "flags_base"] == errors.FLAG_COPY and t.loc[1, "flags_base"] == errors.FLAG_EMPTY
    assert errors.FLAG_REPEATS in t.loc[2, "flags_baseline"]
    assert list(t["delta"]) == [-70.0, -80.0, 95.0] and bool(t["flagged"].all())
    assert t.loc[0, "copy_base"] == 1.0 and t.loc[0, "copy_baseline"] < 1.0
    seeded = errors.error_table(hyps_frame(("base", "baseline", "decoupled.s1")), ["base", "baseline", "decoupled.s1"],
                                None)
    assert errors.delta_pair(["base", "baseline", "decoupled.s1"]) == ("decoupled.s1", "baseline")
    assert list(seeded["delta"]) == [-70.0, -80.0, 95.0]
    assert errors.delta_pair(["base", "decoupled"]) is None
    flagged = errors.filter_table(t, flags=[errors.PAIR_SAME])
    assert list(flagged["sent_id"]) == ["s2"]
    assert len(errors.filter_table(t, flags=[errors.FLAG_EMPTY, errors.FLAG_REPEATS])) == 2


def test_exports_use_the_page_column_names_and_say_their_scope():
    models = ["base", "baseline", "decoupled"]
    t = errors.error_table(hyps_frame(), models, None)
    notes = {"arb-arz|s1": {"tags": ["good"], "comment": "fine", "outputs": {
        "decoupled": {"tags": ["MSA leakage"], "comment": "keeps مش", "spans": [{"text": "مش", "tag": "copy"}]}}}}
    shown = t.iloc[:1]
    f = errors.export_frame(shown, models, scope="filtered view: 1 of 3 translations", notes=notes,
                            delta_of=errors.delta_pair(models))
    labels = errors.column_labels(models, errors.delta_pair(models))
    assert list(f.columns[:4]) == ["exported", "direction", "variety", "sentence id"]
    assert {labels["hyp_decoupled"], labels["chrf_baseline"], labels["copy_base"], "tags · decoupled",
            "marked spans · decoupled", "test pair flags", "Δ chrF++ (decoupled − baseline)"} <= set(f.columns)
    assert not any(c.startswith(("hyp_", "chrf_", "pred_")) or c in ("ref", "label") for c in f.columns)
    assert f.loc[0, "exported"] == "filtered view: 1 of 3 translations"
    assert f.loc[0, "tags · decoupled"] == "MSA leakage" and f.loc[0, "marked spans · decoupled"] == "مش [copy]"
    assert f.loc[0, "tags (sentence)"] == "good"
    csv = errors.to_csv(f)
    assert csv.startswith("\ufeff".encode()) and "output · decoupled" in csv.decode("utf-8-sig")
    everything = errors.export_frame(t, models, scope="everything: 3 translations")
    lines = errors.to_jsonl(everything).decode().splitlines()
    assert len(lines) == 3
    rec = json.loads(lines[1])
    assert rec["exported"] == "everything: 3 translations" and rec["test pair flags"] == errors.PAIR_SAME
    assert rec["output · base"] == ""


def test_seeded_models_are_named_for_readers():
    """Columns, exports and the Δ's name say "decoupled · seed 1", never the internal id "decoupled.s1"."""
    labels = errors.column_labels(["base", "baseline.s1", "decoupled.s1"], ("decoupled.s1", "baseline.s1"))
    assert labels["hyp_decoupled.s1"] == "output · decoupled · seed 1"
    assert labels["chrf_baseline.s1"] == "chrF++ · baseline · seed 1" and labels["hyp_base"] == "output · base"
    assert labels["delta"] == "Δ chrF++ (decoupled · seed 1 − baseline · seed 1)"
    assert not any(".s1" in v for v in labels.values())


def _seeded_table() -> pd.DataFrame:
    """Two sentences, two seeds of two arms: sentence x is where seed 0 and the mean disagree (issue 21: +26.5 for
    seed 0, +9.4 on the mean)."""
    rows = {"direction": ["arb-arz"] * 2, "src": ["arb"] * 2, "tgt": ["arz"] * 2, "sent_id": ["x", "y"],
            "source": ["a b c", "d e f"], "ref": ["a b z", "d e z"]}
    chrf = {"baseline.s0": [10.0, 40.0], "baseline.s1": [30.0, 40.0], "decoupled.s0": [36.5, 41.0],
            "decoupled.s1": [22.3, 45.0]}
    hyps = {"baseline.s0": ["a", "same"], "baseline.s1": ["b", "same"], "decoupled.s0": ["c", "same"],
            "decoupled.s1": ["b", "other"]}
    for m in chrf:
        rows[f"hyp_{m}"], rows[f"chrf_{m}"] = hyps[m], chrf[m]
    return pd.DataFrame(rows)


def test_the_delta_compares_any_seed_pair_or_the_mean_over_seeds():
    """Issue 21 item 5: the Δ is the pair the reader picks: one seed against another, or an arm's mean over its
    seeds; |Δ| and how often the outputs differ are columns to sort by."""
    t = _seeded_table()
    models = errors.models_in(t)
    assert errors.delta_sides(models)[:2] == ["baseline", "decoupled"] and "decoupled.s1" in errors.delta_sides(models)
    seed0 = errors.with_delta(t, "decoupled.s0", "baseline.s0")
    assert list(seed0["delta"]) == [26.5, 1.0] and list(seed0["differ"]) == [1.0, 0.0]
    mean = errors.with_delta(t, "decoupled", "baseline")
    assert mean["delta"].tolist() == pytest.approx([9.4, 3.0]) and list(mean["abs_delta"]) == list(mean["delta"].abs())
    assert list(mean["differ"]) == [0.5, 0.5]             # seed 1 wrote what baseline seed 1 wrote on x
    cross = errors.with_delta(t, "decoupled.s1", "baseline.s0")
    assert cross["delta"].tolist() == pytest.approx([12.3, 5.0]) and list(cross["differ"]) == [1.0, 1.0]
    assert errors.side_label("decoupled", models) == "decoupled (mean of 2 seeds)"
    labels = errors.column_labels(models, ("decoupled", "baseline.s1"))
    assert labels["delta"] == "Δ chrF++ (decoupled (mean of 2 seeds) − baseline · seed 1)"
    full = errors.with_delta(errors.error_table(t, models, None), "decoupled", "baseline")
    frame = errors.export_frame(full, models, scope="everything", delta_of=("decoupled", "baseline"))
    assert frame["outputs differ (decoupled (mean of 2 seeds) vs baseline (mean of 2 seeds))"].tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="no outputs of 'random'"):
        errors.with_delta(t, "random", "baseline")


def test_confident_guess():
    assert dialect_id.confident_guess("arz", 0.9) == "arz"
    assert dialect_id.confident_guess("ars", 0.34) is None and dialect_id.confident_guess("ars", float("nan")) is None


# ---------------------------------------------------------------- annotations


def test_annotations_per_output_with_spans(tmp_path):
    store = AnnotationStore(tmp_path)
    assert "copy" in DEFAULT_TAGS and store.load().format == 2
    k = item_key("arb-arz", "s1")
    store.save_note(k, ["good"], "the sentence is fine")
    store.save_note(k, ["MSA leakage"], "keeps the MSA negation", model="decoupled")
    a = store.add_span(k, "decoupled", "لا لا مش", "لا", "MSA leakage")
    a = store.add_span(k, "decoupled", "لا لا مش", "لا", "MSA leakage")     # the next occurrence
    assert [(s.start, s.end) for s in a.output(k, "decoupled").spans] == [(0, 2), (3, 5)]
    with pytest.raises(ValueError, match="every occurrence"):
        store.add_span(k, "decoupled", "لا لا مش", "لا", "copy")
    with pytest.raises(ValueError, match="not in this output"):
        store.add_span(k, "decoupled", "لا لا مش", "ليس", "copy")
    with pytest.raises(ValueError, match="unknown tag"):
        store.add_span(k, "decoupled", "لا لا مش", "مش", "nope")
    with pytest.raises(ValueError, match="still used"):
        store.save_tags([t for t in DEFAULT_TAGS if t != "MSA leakage"])
    again = AnnotationStore(tmp_path).load()
    assert again.note(k).tags == ("good",) and again.output(k, "decoupled").comment == "keeps the MSA negation"
    assert again.output(k, "baseline").empty
    assert again.flat()[k]["outputs"]["decoupled"]["spans"][0]["text"] == "لا"
    store.remove_span(k, "decoupled", 0, 2)
    assert [(s.start, s.end) for s in store.load().output(k, "decoupled").spans] == [(3, 5)]
    store.save_note(k, [], "", model="decoupled")
    assert len(store.load().output(k, "decoupled").spans) == 1              # clearing the note keeps its spans
    saved = json.loads(store.path.read_text())
    assert saved["format"] == 2 and saved["items"][k]["outputs"]["decoupled"]["spans"][0]["end"] == 5


def test_format_1_is_read_and_unknown_fields_are_kept(tmp_path):
    store = AnnotationStore(tmp_path)
    k = item_key("arb-arz", "s1")
    store.path.write_text(json.dumps({"format": 1, "tags": list(DEFAULT_TAGS[:6]), "reviewer": "A. N.",
                                      "items": {k: {"tags": ["orthography"], "comment": "hamza", "updated": "x",
                                                    "confidence": 0.8}}}), encoding="utf-8")
    old = store.load()
    assert old.format == 1 and old.note(k).tags == ("orthography",) and old.note(k).comment == "hamza"
    store.save_note(k, ["wrong variety"], "", model="baseline")
    data = json.loads(store.path.read_text())
    assert data["format"] == 2 and data["reviewer"] == "A. N."               # unknown top-level field kept
    item = data["items"][k]
    assert item["confidence"] == 0.8 and item["comment"] == "hamza"           # ... and the item's, and its note
    assert item["outputs"]["baseline"]["tags"] == ["wrong variety"]
    # a format-2 file from a newer version: unknown fields of outputs and spans survive a save too
    item["outputs"]["baseline"]["severity"] = 3
    item["outputs"]["baseline"]["spans"] = [{"start": 0, "end": 2, "text": "لا", "tag": "copy", "by": "B"}]
    store.path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    store.save_note(k, ["orthography"], "now fine")
    kept = json.loads(store.path.read_text())["items"][k]
    assert kept["outputs"]["baseline"]["severity"] == 3 and kept["outputs"]["baseline"]["spans"][0]["by"] == "B"
    assert kept["tags"] == ["orthography"] and kept["confidence"] == 0.8


@pytest.mark.parametrize("content", ['{"format": 3}', '{"format": 2, "items": {"k": {"outputs": []}}}',
                                     '{"format": 2, "items": {"k": {"outputs": {"m": {"spans": [{"start": 3}]}}}}}'])
def test_bad_format_2_files_are_refused(tmp_path, content):
    store = AnnotationStore(tmp_path)
    store.path.write_text(content)
    with pytest.raises(AnnotationsError, match="annotations.json"):
        store.load()
    with pytest.raises(AnnotationsError):
        store.save_note("k", ["good"], "")
    assert store.path.read_text() == content


# ---------------------------------------------------------------- colours, scale, labels


def test_ciede2000_matches_sharma_et_al():
    # test pairs 1, 2, 7 and 17 of Sharma, Wu & Dalal (2005), table 1
    for lab1, lab2, want in [((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
                             ((50, 3.1571, -77.2803), (50, 0, -82.7485), 2.8615),
                             ((50, 0, 0), (50, -1, 2), 2.3669),
                             ((50, 2.5, 0), (73, 25, -18), 27.1492)]:
        assert palette.ciede2000(lab1, lab2) == pytest.approx(want, abs=1e-4)


def test_palette_survives_colour_blindness():
    flores = {c: variety(c).color for c in FLORES_CODES}
    worst = palette.closest_pair(flores)
    assert worst[0] >= palette.MIN_DELTA_E, worst
    regions = {k: v for k, v in figures.REGION_COLOURS.items() if k != "English"}
    assert palette.closest_pair(regions)[0] >= palette.MIN_DELTA_E
    # the check can fail: the look-alikes (Moroccan and Tunisian both green) do
    old = {"ary": "#2ca02c", "aeb": "#66bd63", "arz": "#d62728"}
    assert palette.closest_pair(old)[0] < palette.MIN_DELTA_E
    # and the simulation does something: red and green collapse for a deuteranope
    assert palette.delta_e("#d62728", "#2ca02c", "deuteranopia") < palette.delta_e("#d62728", "#2ca02c")
    assert len({v.color for v in VARIETIES}) == len(VARIETIES)


def test_delta_scale_is_fixed_and_symmetric():
    d = pd.DataFrame({"system": ["decoupled", "decoupled", "random", "base"], "direction": ["a", "b", "a", "a"],
                      "delta": [-1.2, 0.3, 4.1, 30.0], "low": [-2.0, -0.2, 3.0, 28.0], "high": [-0.4, 0.9, 4.7, 32.0]})
    assert figures.delta_limit(d) == 5.0                         # the random arm's interval sets it; base ignored
    frame = pd.DataFrame({"variety": ["apc", "ajp"], "name": ["Beirut", "Amman"], "city": ["Beirut", "Amman"],
                          "lat": [33.89, 31.95], "lon": [35.50, 35.93], "delta": [-1.2, 0.3], "low": [-2.0, -0.2],
                          "high": [-0.4, 0.9], "significant": [True, False]})
    for sub in (frame, frame.iloc[:1]):
        marker = maps.delta_map(sub, "t", 5.0).data[-1].marker
        assert (marker.cmin, marker.cmax, marker.cmid) == (-5.0, 5.0, 0)


@pytest.mark.parametrize("corpus", ["flores", "madar"])
def test_map_labels_fit_inside_the_map_and_never_overlap(corpus):
    """Issue 21: with MADAR's 25 cities the labels overlapped or were cut at the map's edge. Every label (the
    longest Δ text) lies inside the map, overlaps no other label and covers no city's dot."""
    cities = [v for v in VARIETIES if v.lat is not None and corpus in v.sources]
    texts = [f"{v.city} {-10.23:+.1f}" for v in cities]
    centres = maps.label_layout([v.lon for v in cities], [v.lat for v in cities], texts)
    boxes = [maps.label_box(*c, t) for c, t in zip(centres, texts)]
    (x0, x1), (y0, y1) = maps.MAP_LON, maps.MAP_LAT
    for k, (a0, b0, a1, b1) in enumerate(boxes):
        assert x0 <= a0 and a1 <= x1 and y0 <= b0 and b1 <= y1, (cities[k].city, boxes[k])
        assert not any(a0 - 0.4 < v.lon < a1 + 0.4 and b0 - 0.4 < v.lat < b1 + 0.4 for v in cities), cities[k].city
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            A, B = boxes[a], boxes[b]
            assert not (A[0] < B[2] and B[0] < A[2] and A[1] < B[3] and B[1] < A[3]), (cities[a].city, cities[b].city)
    frame = pd.DataFrame({"name": [v.name for v in cities], "city": [v.city for v in cities],
                          "lat": [v.lat for v in cities], "lon": [v.lon for v in cities], "delta": -10.23,
                          "low": -11.0, "high": -9.0, "significant": True})
    shown = next(t for t in maps.delta_map(frame, "t", 12.0).data if t.mode == "text")
    assert list(shown.text) == texts and list(shown.lon) == [c[0] for c in centres]      # drawn where placed


def _title_lines(text) -> list[str]:
    return [x for x in str(text or "").split("<br>") if x]


def test_chart_titles_never_overlap():
    """Issue 21: titles overlapped the panel titles under them (a 40 px top margin for both) and ran past a
    half-width chart. Every title line fits its width, and the top margin holds the title and the panel titles."""
    energy = pd.DataFrame([{"model": m, "site": "layer.02", "step": s, "energy_share_mean": 0.3}
                           for m in ("base", "decoupled.s0") for s in (0, 8)])
    probes = energy.rename(columns={"energy_share_mean": "accuracy"})
    pens = pd.DataFrame([{"arm": a, "model": f"{a}.s0", "step": s, "penalty": 0.1}
                         for a in ("decoupled", "random") for s in (0, 8)])
    dose = pd.DataFrame({"lam": [0.0, 0.1], "msa_to_dialect": [None, {"delta": 1.0, "low": 0.0, "high": 2.0}],
                         "called_msa": [0.2, 0.1], "posthoc_accuracy": [0.9, 0.8]})
    points = pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0], "variety": ["arb", "arz"], "region": ["Standard", "Nile Valley"],
                           "sent_id": ["a", "a"], "text": ["x", "y"]})
    figs = {"posthoc": (figures.posthoc_vs_energy(energy, probes, ["decoupled.s0"], "layer.02"), figures.TITLE_CHARS),
            "penalties": (figures.penalties(pens, ["decoupled", "random"]), figures.TITLE_CHARS),
            "dose": (figures.dose_response(dose), figures.TITLE_CHARS),
            "embedding": (figures.embedding(points, title="decoupled · seed 1 (probe + penalty) · step 1600 · "
                                                          "layer.02 · UMAP"), figures.TITLE_CHARS // 2)}
    for name, (fig, chars) in figs.items():
        lines = _title_lines(fig.layout.title.text)
        subs = figures.subplot_titles(fig)
        sub_lines = max((len(_title_lines(a.text)) for a in subs), default=0)
        assert all(len(x) <= chars for x in lines), (name, lines)
        assert all(len(x) <= chars // len(subs) for a in subs for x in _title_lines(a.text)), name
        need = (figures.TITLE_PAD + len(lines) * figures.TITLE_PX * figures.LINE if lines else 0) \
            + sub_lines * figures.SUBTITLE_PX * figures.LINE
        assert fig.layout.margin.t >= need, (name, fig.layout.margin.t, need)
        assert fig.layout.title.yref == "container" and fig.layout.title.yanchor == "top"


def test_export_file_names_carry_experiment_arm_seed_layer_and_step():
    from explorer.ui import exports

    assert exports.file_name("madar-25", "embedding", model="decoupled.s1", layer="layer.02", step=1600,
                             extra=["UMAP"], ext="png") == "madar-25_embedding_decoupled_seed1_layer02_step1600_UMAP.png"
    assert exports.file_name("tiny", "delta-map", model="random", extra=["MSA → dialect"]) == \
        "tiny_delta-map_random_MSA-dialect"
    assert exports.file_name("tiny", "translate", models=["baseline.s0", "base"]) == "tiny_translate_baseline_seed0_base"
    flat = exports.plain(pd.DataFrame({"lam": [0.0, 0.1], "d": [None, {"delta": 1.0, "low": 0.5}], "v": [["a"], []]}))
    assert list(flat.columns) == ["lam", "d delta", "d low", "v"] and flat["d delta"].iloc[1] == 1.0
    assert flat["v"].iloc[0] == '["a"]'


def test_many_models_get_one_hue_per_arm_and_a_dash_per_seed():
    """Line charts of every seed of every arm (issue 21: with seven colours cycling by position, the base and
    random.s0 shared a blue): seeds of one arm share its hue and differ by dash; arms never share a hue."""
    from explorer.ui import figures

    models = ["base", *(f"{a}.s{k}" for a in ("baseline", "decoupled", "random") for k in range(3))]
    geo = pd.DataFrame([{"model": m, "site": f"layer.0{layer}", "variety": "arz", "cka": 0.5 + 0.01 * i}
                        for i, m in enumerate(models) for layer in range(3)])
    lines = {t.name: t.line for t in figures.per_layer(geo, "cka", "arz", models, "t").data}
    assert set(lines) == set(models)
    hue = {m: lines[m].color for m in models}
    assert hue["base"] != hue["random.s0"] and len(set(hue.values())) == 4
    for arm in ("baseline", "decoupled", "random"):
        seeds = [f"{arm}.s{k}" for k in range(3)]
        assert len({hue[m] for m in seeds}) == 1 and len({lines[m].dash for m in seeds}) == 3


def test_the_dialect_guess_is_honest():
    """Issue 21 item 6: three varieties with probabilities, never a label on MSA or garbled output, and a flag for
    why an output is garbled (repetition, cut short, unknown words)."""
    from explorer.analysis import guess as G

    classes = ("arb", "arz", "mus")
    known = G.lexicon(["ازيك يا صاحبي عامل ايه النهارده", "كيف حالك اليوم يا صديقي"])
    ok = G.guess("ازيك يا صاحبي عامل ايه", [0.05, 0.85, 0.10], classes, known=known, msa_probability=0.1)
    assert ok.label == "arz" and [c for c, _ in ok.top] == ["arz", "mus", "arb"] and not ok.garbled
    msa = G.guess("كيف حالك اليوم يا صديقي", [0.05, 0.08, 0.87], classes, known=known, msa_probability=0.9)
    assert msa.label is None and msa.called_msa and "reads as MSA" in msa.why      # not "Muscat .87"
    assert G.describe(msa).endswith("top 3: Muscat (mus) .87 · Egyptian (arz) .08 · MSA (arb) .05")
    loop = G.guess("يا يا يا يا يا يا يا يا", [0.0, 0.95, 0.05], classes, known=known)
    assert loop.label is None and G.REPEATS in loop.garbled
    junk = G.guess("قثصض ظطكمن ثقفغ عامل", [0.0, 0.95, 0.05], classes, known=known)
    assert junk.label is None and junk.garbled == (G.UNKNOWN,) and junk.unknown_share == 0.75
    short = G.guess("ازيك", [0.0, 0.95, 0.05], classes, ref="ازيك يا صاحبي عامل ايه النهارده", known=known)
    assert short.label is None and G.CUT_SHORT in short.garbled
    unsure = G.guess("ازيك يا صاحبي", [0.2, 0.5, 0.3], classes, known=known)
    assert unsure.label is None and "no confident guess" in unsure.why and len(unsure.top) == 3
    rows = pd.DataFrame({"src": ["arb"] * 4, "tgt": ["arz"] * 4, "guess_d.s0": ["arz", "mus", "", ""],
                         "garbled_d.s0": ["", "", "", "cut short"], "called_msa_d.s0": [False, False, False, True]})
    held = G.not_msa_breakdown(rows, ["d.s0"], lambda m: m.split(".")[0])[0]
    assert held["not called MSA"] == 0.75 and held["garbled"] == 0
    assert held["the requested dialect"] == held["another variety"] == held["no confident guess"] == pytest.approx(1 / 3)
