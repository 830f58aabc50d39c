"""The app: every page under Streamlit's AppTest against a tiny experiment, and the backend helpers the pages use
(dialect identification, annotations, the translate switch).

AppTest runs the real scripts in this process; ``st.cache_data`` is shared between AppTest instances, which is
why every test gets its own cache root path (the cache keys hold the experiment folder).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.data.varieties import ENG, HR

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 180  # the first run of a page imports torch, loads models and fits the dialect classifier


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def app_root(tiny_experiment, tmp_path_factory) -> Path:
    """A cache root holding a private copy of the tiny experiment (the app writes the linguist's notes there)."""
    root = tmp_path_factory.mktemp("app-cache")
    shutil.copytree(tiny_experiment, root / "tiny")
    return root


@pytest.fixture
def app(app_root, monkeypatch):
    """``app(page)``: a fresh AppTest of app.py (a new session, as after a restart), run on ``page``."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DDE_CACHE_ROOT", str(app_root))

    def make(page: str | None = None):
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.run()
        if page:
            at.switch_page(page).run()
        assert_ok(at)
        return at
    return make


def assert_ok(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def charts(at) -> list[str]:
    """The Plotly figures on the page, as their JSON specs."""
    return [el.proto.spec for el in at.get("plotly_chart")]


def html_of(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_committed_streamlit_config_is_private():
    """What Streamlit itself reads from .streamlit/config.toml when started from the repository: loopback only,
    no error details in the browser (tests/test_browser.py checks the listening socket of a real server)."""
    import subprocess
    import sys

    code = ("from streamlit import config; config.get_config_options(force_reparse=True); "
            "print(config.get_option('server.address'), config.get_option('client.showErrorDetails'), "
            "config.get_option('browser.gatherUsageStats'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(APP).parent, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["127.0.0.1", "none", "False"], out


# ---------------------------------------------------------------- pages


def test_home_states_the_verdict_and_draws_one_scale(app, app_root):
    at = app()
    assert at.title[0].value == "Dialect Decoupling Explorer"
    page = html_of(at)
    assert "diglossic" in page
    boxes = [m.value for m in at.markdown if "dde-verdict" in m.value]
    assert len(boxes) == 2 and "<b>In short:</b>" in boxes[0]          # the plain summary comes first
    short = re.sub(r"<[^>]+>", "", boxes[0]).removeprefix("In short: ")
    assert len(short.split()) <= 60 and "chrF" not in short and "Δ" not in short and "probe" not in short
    from explorer.analysis.plain import GLOSSARY
    tips = {c.value.strip("*"): c.help for c in at.caption if c.help}
    assert all(tips.get(term) == text for term, text in GLOSSARY.items())   # a tooltip for every term
    folded = at.expander[0]
    assert "full verdict" in folded.label and any("The paper reports" in m.value for m in folded.markdown)
    verdict = [b for b in boxes if "The paper reports +2.0 chrF++" in b]
    assert len(verdict) == 1
    assert "over 2 MSA → dialect directions and 2 seeds" in verdict[0] and "(the noise floor)" in verdict[0]
    assert "over seeds and test sentences" in verdict[0] and "MSA leakage" in verdict[0]
    assert re.search(r"probe gate accepted \d+ of \d+ refits of decoupled over 2 seeds", verdict[0])
    assert len(at.dataframe) == 1                      # the experiments; the headline is a plain HTML table
    tables = [m.value for m in at.markdown if 'class="dde-table"' in m.value]
    headline = tables[0]
    for col in ("base", "baseline", "decoupled", "random", "copy src", "Δ decoupled [95% CI]", "MSA → dialect",
                "noise floor"):
        assert f">{col}<" in headline, col
    assert headline.count('<td dir="auto"') > 20
    # each arm is its mean ± sd over the two seeds, from the per-model scores
    from explorer.experiment.view import load_experiment
    scores = load_experiment(app_root / "tiny").scores()
    eg = scores[(scores["arm"] == "decoupled") & (scores["direction"] == "arb-arz")]["chrf"]
    assert len(eg) == 2 and f'{eg.mean():.1f}<span class="dde-sd"> ±{eg.std():.1f}</span>' in headline
    assert re.search(r'<br><span class="dde-ci">(within noise|better|worse)</span>', headline)
    # the interval travels as numbers (low, high) and is formatted only here, from the stored deltas
    deltas = load_experiment(app_root / "tiny").deltas()
    d = deltas[(deltas["system"] == "decoupled") & (deltas["direction"] == "arb-arz")].iloc[0]
    assert f'{d["delta"]:+.2f}<br><span class="dde-ci">[{d["low"]:+.2f}, {d["high"]:+.2f}]</span>' in headline
    # each kind ends with the mean over its directions, in bold, with the Δ of that mean
    assert headline.count('class="mean">mean of 2 directions<') == 2
    assert re.search(r'class="num[a-z ]* mean">[+−-]\d+\.\d\d<br><span class="dde-ci">', headline)
    # what the outputs look like: as requested / called MSA per arm, and the references' ceiling
    leak = next(t for t in tables if ">called MSA (leakage)<" in t)
    assert ">references (ceiling)<" in leak and ">decoupled<" in leak and "dde-sd" in leak
    assert not any("Dose–response" in h.value for h in at.subheader)      # no sweep arms here
    figs = charts(at)
    assert len(figs) == 2
    geo = json.loads(figs[0])
    assert geo["data"][0]["type"] == "scattergeo" and geo["layout"]["geo"]["showland"] is False  # offline map
    labels = next(t for t in geo["data"] if t.get("mode") == "text")
    assert {"Cairo", "Rabat"} <= {t.split()[0] for t in labels["text"]}
    dots = next(t for t in geo["data"] if t.get("mode") == "markers")
    scale = (dots["marker"]["cmin"], dots["marker"]["cmax"])
    assert scale[0] == -scale[1]
    assert any("This run:" in m.value and "MSA → dialect: decoupled" in m.value for m in at.markdown)
    bars = json.loads(figs[1])
    at.radio(key="home_kind").set_value("dialect → MSA").run()
    assert_ok(at)
    assert json.loads(charts(at)[1])["data"][0]["x"] != bars["data"][0]["x"]   # the bars follow the direction
    at.selectbox(key="home_system").set_value("random").run()
    assert_ok(at)
    geo = json.loads(charts(at)[0])
    assert "random − baseline" in geo["layout"]["title"]["text"]
    dots = next(t for t in geo["data"] if t.get("mode") == "markers")
    assert (dots["marker"]["cmin"], dots["marker"]["cmax"]) == scale   # one scale for all arms
    assert json.loads(charts(at)[1])["layout"]["yaxis"]["range"] == bars["layout"]["yaxis"]["range"]


@pytest.fixture(scope="module")
def sweep_root(tiny_experiment, tmp_path_factory) -> Path:
    """A cache root holding the tiny experiment turned into a λ sweep: its decoupled arm copied as a second
    decoupled arm at λ = 0.1 (checkpoints, scores, and deltas.json rows with the Δ raised by 1.0), as
    ``run --sweep 0.1`` lays it out."""
    from sweep_experiment import make_sweep

    root = tmp_path_factory.mktemp("sweep-cache")
    make_sweep(tiny_experiment, root / "sweep")
    return root


def test_home_shows_the_dose_response_of_a_sweep(sweep_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DDE_CACHE_ROOT", str(sweep_root))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert_ok(at)
    assert any("Dose–response" in h.value for h in at.subheader)
    dose = next(m.value for m in at.markdown if 'class="dde-table"' in m.value and ">post-hoc probe<" in m.value)
    deltas = json.loads((sweep_root / "sweep" / "eval" / "deltas.json").read_text())["aggregate"]   # as written
    for arm, lam in (("decoupled", "0.01"), ("decoupled-lam0.1", "0.1")):
        x = deltas[arm]["msa_to_dialect"]
        assert f">{lam}<" in dose and f"{x['delta']:+.2f}<br>" in dose, arm
    assert ">(reference)<" in dose                       # the baseline is λ = 0
    fig = next(f for f in map(json.loads, charts(at)) if any(t.get("name") == "Δ chrF++" for t in f["data"]))
    assert [t["name"] for t in fig["data"]] == ["Δ chrF++", "called MSA", "post-hoc probe accuracy"]
    assert fig["data"][0]["x"] == ["0", "0.01", "0.1"]
    assert fig["data"][0]["y"][2] == pytest.approx(deltas["decoupled-lam0.1"]["msa_to_dialect"]["delta"])
    headline = next(m.value for m in at.markdown if 'class="dde-table"' in m.value)
    assert ">Δ decoupled-lam0.1 [95% CI]<" in headline


@pytest.mark.parametrize("page", ["pages/translate.py", "pages/error_analysis.py"])
def test_a_page_opened_first_gets_the_apps_frame(app_root, monkeypatch, page):
    """A session whose very first run is a page URL: AppTest, like a fresh server, runs the page without app.py
    (Streamlit's pages/-folder mode); the page reroutes through app.py (explorer/ui/shell.py) and finds the
    experiment instead of "no experiment". tests/test_browser.py checks the same on real fresh servers."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DDE_CACHE_ROOT", str(app_root))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(page).run()
    assert_ok(at)
    assert not any("no experiment to look at" in i.value for i in at.info)
    assert at.sidebar.selectbox(key="experiment").value.endswith("tiny")


def test_embeddings_react_to_widgets_and_show_distances(app, app_root):
    from explorer.experiment.view import load_experiment

    steps = load_experiment(app_root / "tiny").checkpoints("decoupled.s0")
    at = app("pages/embeddings.py")
    before = charts(at)
    assert len(before) == 2                               # baseline and decoupled side by side
    ckpt = at.sidebar.button_group(key="ckpt")
    assert ckpt.options == [str(s) for s in steps] and len(steps) > 1 and ckpt.value == steps[-1]
    hover = json.loads(before[1])["data"][0]["hovertemplate"]
    assert "customdata[2]" in hover                       # hover shows the sentence
    # the bidi isolates are in the figure's data, however the figure was serialised (orjson writes them raw,
    # the standard json module escapes them as \u2068: parsing undoes either)
    cells = [str(c) for row in json.loads(before[1])["data"][0]["customdata"] for c in row]
    assert any("\u2068" in c and "\u2069" in c for c in cells)
    tables = [m.value for m in at.markdown if 'class="dde-table"' in m.value]
    assert len(tables) == 3 and all("paired 1 − cos" in t and ">mean<" in t for t in tables[:2])
    # every seed of every arm, each its own row, with the mean over dialects of that model's own distances
    view = load_experiment(app_root / "tiny")
    every = tables[2]
    assert all(f">{m.rpartition('.s')[0]} · seed {m.rpartition('.s')[2]}<" in every for m in view.arms)
    from explorer.analysis.readings import msa_distances
    own = msa_distances(view.geometry_long(), "decoupled.s1", steps[-1], view.penalised_sites[0])
    assert f">{own.iloc[-1]['paired 1 − cos']:.3g}<" in every
    assert any("This run:" in m.value and "from their MSA translations" in m.value for m in at.markdown)
    at.sidebar.radio(key="emb_method").set_value("PCA").run()
    assert_ok(at)
    pca = charts(at)
    assert pca[0] != before[0]
    at.sidebar.button_group(key="ckpt").set_value(steps[0]).run()
    assert_ok(at)
    assert charts(at)[1] != pca[1] and f"step {steps[0]}" in charts(at)[1]
    at.sidebar.selectbox(key="emb_link").set_value("arz").run()
    assert_ok(at)
    assert any(tr.get("name") == "Egyptian ↔ MSA translation" for tr in json.loads(charts(at)[0])["data"])
    at.sidebar.radio(key="emb_colour").set_value("region").run()
    names = {tr.get("name") for tr in json.loads(charts(at)[0])["data"]}
    assert {"MSA (arb)", "Nile Valley", "Maghrebi"} <= names and "Standard" not in names
    # the checkpoint chosen here is the one the other pages show
    at.switch_page("pages/subspace.py").run()
    assert_ok(at)
    assert at.sidebar.button_group(key="ckpt").value == steps[0]
    assert f"step {steps[0]}" in charts(at)[-1]


def test_subspace_page(app, app_root):
    from explorer.experiment.view import load_experiment

    at = app("pages/subspace.py")
    figs = charts(at)
    # angles, probe, penalties, two energy heatmaps, post-hoc vs energy, per-layer distances
    assert len(figs) == 7
    assert "previous refit" in figs[0] and "first refit" in figs[0]
    assert "chance" in figs[1]
    view = load_experiment(app_root / "tiny")
    pens = json.loads(figs[2])
    assert [a["text"] for a in pens["layout"]["annotations"]] == ["decoupled", "random"]    # side by side
    assert sorted(t["name"] for t in pens["data"]) == sorted(m for m in view.arms if not m.startswith("baseline"))
    assert all(t["line"]["width"] == 1 for t in pens["data"])                                 # thin, one per seed
    assert json.loads(figs[3])["data"][0]["type"] == "heatmap"
    # the reference heatmap (left) is the baseline of the chosen model's seed over every checkpoint, not the base's
    # single step-0 column (the page looked for a model called "baseline", which no longer exists)
    left, right = json.loads(figs[3]), json.loads(figs[4])
    assert left["layout"]["title"]["text"].startswith("baseline.s0 at ")
    assert right["layout"]["title"]["text"].startswith("decoupled.s0 at ")
    assert left["data"][0]["x"] == right["data"][0]["x"] and len(left["data"][0]["x"]) > 1
    post = json.loads(figs[5])
    assert {t["name"] for t in post["data"]} == set(view.arms) and "post-hoc probe accuracy" in figs[5]
    readings = [m.value for m in at.markdown if "This run:" in m.value]
    assert any("held-out tokens against" in r for r in readings)
    assert any("No probe gate in this run" in r for r in readings)
    assert any("Penalty from its first to its last step" in r and "decoupled" in r for r in readings)
    last = view.posthoc().query("model == 'decoupled.s1' and site == @view.penalised_sites[0]").iloc[-1]
    assert any("decoupled.s1 energy" in r and f"probe {last['accuracy']:.2f}" in r for r in readings)
    at.radio(key="sub_metric").set_value("code_length_bits").run()
    assert_ok(at)
    assert charts(at)[1] != figs[1] and "code length" in charts(at)[1]
    layer = json.loads(charts(at)[6])
    assert {tr["name"] for tr in layer["data"]} == set(view.models)  # one dialect
    at.selectbox(key="sub_geo_metric").set_value("cka").run()
    assert "linear CKA" in charts(at)[6]
    at.selectbox(key="sub_dialect").set_value("ary").run()
    assert "Moroccan" in charts(at)[6]
    at.sidebar.selectbox(key="sub_arm").set_value("decoupled.s1").run()
    assert_ok(at)
    assert json.loads(charts(at)[3])["layout"]["title"]["text"].startswith("baseline.s1 at ")   # its own seed
    at.sidebar.selectbox(key="sub_arm").set_value("random.s0").run()
    assert_ok(at)
    assert any("random" in json.loads(c)["layout"]["title"]["text"] for c in charts(at))


@pytest.fixture(scope="module")
def gated_root(tmp_path_factory) -> Path:
    """A cache root with a one-seed tiny run whose probe gate is on (``--gate 0.01``): the tiny model separates MSA
    from dialects barely or not at all, so the gate rejects refits."""
    from explorer.config import preset_config
    from explorer.experiment.run import run_experiment

    root = tmp_path_factory.mktemp("gated-cache")
    run_experiment(preset_config("tiny", gate=0.01, seeds=(0,)), root / "gated", bar=False)
    return root


@pytest.mark.slow
def test_subspace_page_shows_the_gate(gated_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from explorer.experiment.view import load_experiment

    refits = load_experiment(gated_root / "gated").refits("decoupled.s0")
    rejected = refits[~refits["accepted"]]
    assert len(rejected) and refits["gate_threshold"].notna().all()     # the fixture exercises the gate
    monkeypatch.setenv("DDE_CACHE_ROOT", str(gated_root))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/subspace.py").run()
    assert_ok(at)
    table = next(m.value for m in at.markdown if ">gate threshold<" in m.value)
    assert table.count(">rejected<") == len(rejected) and rejected["gate_reason"].iloc[0] in table
    assert f"{refits['gate_threshold'].iloc[0]:.3f}" in table
    readings = [m.value for m in at.markdown if "This run:" in m.value]
    assert any(("rejected all" in r or "applies from step" in r) for r in readings)
    figs = [json.loads(f) for f in charts(at)]
    probe = next(f for f in figs if any(t.get("name") == "gate threshold" for t in f["data"]))
    marks = next(t for t in probe["data"] if t.get("name") == "rejected by the gate")
    assert marks["marker"]["symbol"] == "x" and len(marks["x"]) == len(rejected)
    assert any(t.get("name") == "rejected by the gate" for t in figs[0]["data"])        # on the angles too


def test_translate_page_and_decoupling_switch(app, app_root):
    import html

    from explorer.data.varieties import variety_label
    from explorer.evaluation.dialect_id import CONFIDENT
    from explorer.experiment.view import load_experiment

    view = load_experiment(app_root / "tiny")
    at = app("pages/translate.py")
    boxes = html_of(at)
    assert boxes.count('class="dde-sentence"') == 4       # source, reference, two outputs
    assert 'dir="rtl"' in boxes
    assert at.sidebar.button_group(key="ckpt")            # the same checkpoint control as elsewhere
    guesses = [m.value for m in at.markdown if "top three:" in m.value]
    assert len(guesses) == 2                              # one per output: a label only when it can be trusted
    assert all(float(re.search(r"\.(\d\d)", g.split("top three:")[1])[1]) >= 60 for g in guesses if "Looks like" in g)
    assert any("accurate on the test split" in c.value for c in at.sidebar.caption)
    shares = [m.value for m in at.metric if m.label == "MSA-subspace share"]
    at.sidebar.toggle(key="tr_on").set_value(True).run()
    assert_ok(at)
    assert "decoupling α=1 at layer." in html_of(at)
    after = [m.value for m in at.metric if m.label == "MSA-subspace share"]
    assert after[0] != shares[0] and float(after[0]) < 1e-3  # α = 1 removes the subspace on the left model
    assert after[1] == shares[1]                             # the right model is untouched
    at.sidebar.slider(key="tr_alpha").set_value(0.5).run()
    assert "decoupling α=0.5" in html_of(at)
    # the page says which subspace it removes: the baseline has none of its own (a post-hoc probe), the
    # decoupled arm its own training refit at the step of that refit
    def source() -> str:
        return next(c.value for c in at.sidebar.caption if c.value.startswith("Removes from"))
    assert "a probe fitted on this model's states at step" in source() and "baseline" in source()
    assert "with a probe fitted on this model" in html_of(at)
    at.sidebar.radio(key="tr_target").set_value("right").run()
    assert_ok(at)
    step = int(re.search(r"refit at step (\d+)", source())[1])
    from explorer.experiment.view import load_experiment
    view = load_experiment(Path(os.environ["DDE_CACHE_ROOT"]) / "tiny")
    assert "decoupled" in source() and step in set(view.refits("decoupled.s0")["step"])


def test_translate_input_is_checked(app):
    at = app("pages/translate.py")
    at.radio(key="tr_mode").set_value("Type my own").run()
    assert any("empty" in w.value for w in at.warning)
    at.text_area(key="tr_text").input("hello, how are you?").run()
    assert_ok(at)
    assert any("not in Arabic script" in w.value for w in at.warning)
    at.text_area(key="tr_text").input("كلمة " * 199).run()
    assert any("tokens long" in w.value for w in at.warning)
    at.text_area(key="tr_text").input("كيف حالك اليوم؟").run()
    assert not at.warning
    assert html_of(at).count('class="dde-sentence"') == 3   # no reference for a typed sentence


def test_error_analysis_filters_table_and_exports(app):
    at = app("pages/error_analysis.py")
    table = next(m.value for m in at.markdown if 'class="dde-table"' in m.value)
    assert ">example<" in table and ">source<" in table and ">reference<" in table
    assert ">baseline.s0<" in table and ">decoupled.s0<" in table       # the first seed of each, by default
    first = next(r.value for r in at.markdown if "This run:" in r.value)
    n = int(first.split("</b> ")[1].split(" of ")[0])
    at.multiselect(key="ea_dirs").select("arb-arz").run()
    assert_ok(at)
    reading = next(r.value for r in at.markdown if "This run:" in r.value)
    assert 0 < int(reading.split("</b> ")[1].split(" of ")[0]) < n
    assert "MSA → Egyptian" in html_of(at) and "Egyptian → MSA" not in next(
        m.value for m in at.markdown if 'class="dde-table"' in m.value)
    labels = [b.proto.label for b in at.get("download_button")]
    assert any(lbl.startswith("CSV · filtered view") for lbl in labels)
    assert any(lbl.startswith("JSONL · everything") for lbl in labels)
    at.text_input(key="ea_search").input("no such words anywhere zzz").run()
    assert_ok(at)
    assert any("No translation matches" in i.value for i in at.info)   # not a blank grid


def test_one_sentence_shows_every_output_and_a_clean_word_diff(app, app_root):
    from explorer.experiment.view import load_experiment

    models = [m for m in load_experiment(app_root / "tiny").models]
    at = app("pages/error_analysis.py")
    outputs = [m.value for m in at.markdown if 'class="dde-output"' in m.value]
    assert len(outputs) == len(models)
    assert all('dir="rtl"' in o or 'dir="ltr"' in o for o in outputs)
    from explorer.ui.widgets import model_label

    assert all(any(model_label(m) in o for o in outputs) for m in models)
    assert all("chrF++" in o and "copied from the source" in o for o in outputs)
    at.toggle(key="ea_diff").set_value(True).run()
    assert_ok(at)
    diffed = [m.value for m in at.markdown if 'class="dde-output"' in m.value]
    assert len(diffed) == len(models) and "<del" not in html_of(at)


def test_filters_live_in_the_url(app_root, monkeypatch):
    """A link with filters opens the page filtered, as a reload does: a new session opening the page's address
    with its query parameters (values as the page shows them). The browser test checks that changing a filter
    writes the address."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DDE_CACHE_ROOT", str(app_root))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params = {"ea_dirs": "MSA → Egyptian", "ea_asc": "false", "ea_sort": "source words",
                       "ea_search": "devtest"}
    at.switch_page("pages/error_analysis.py").run()       # the page's own address, first thing in the session
    assert_ok(at)
    assert at.title[0].value == "Error analysis" and at.selectbox(key="experiment").value  # through app.py
    assert at.multiselect(key="ea_dirs").value == ["arb-arz"]
    assert at.toggle(key="ea_asc").value is False and at.selectbox(key="ea_sort").value == "length"
    assert at.text_input(key="ea_search").value == "devtest"
    table = next(m.value for m in at.markdown if 'class="dde-table"' in m.value)
    assert "MSA → Egyptian" in table and "Egyptian → MSA" not in table


def link_of(at) -> str:
    """The address in the sidebar's "Link to this view" box."""
    codes = [c.value for c in at.sidebar.code if c.value.startswith("http")]
    assert len(codes) == 1, codes
    return codes[0]


def reopen(link: str, page: str):
    """A fresh session (a new browser) opening ``link`` on ``page``."""
    from urllib.parse import parse_qs, urlsplit

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(urlsplit(link).query).items()}
    at.switch_page(page).run()
    assert_ok(at)
    return at


def test_every_view_is_a_link(app, app_root):
    """Every page's state goes into the "Link to this view" box (experiment, models, seeds, layer, checkpoint,
    sentence, switch and α, filters), and a fresh session opening that link shows the same view."""
    from explorer.experiment.view import load_experiment

    steps = load_experiment(app_root / "tiny").checkpoints("decoupled.s0")
    at = app("pages/embeddings.py")
    assert "experiment=tiny" in link_of(at) and f"ckpt={steps[-1]}" in link_of(at)
    at.sidebar.button_group(key="ckpt").set_value(steps[0]).run()
    at.sidebar.selectbox(key="emb_left").set_value("random.s1").run()
    at.sidebar.selectbox(key="emb_site").set_value("layer.00").run()
    at.sidebar.radio(key="emb_method").set_value("PCA").run()
    at.sidebar.selectbox(key="emb_link").set_value("arz").run()
    assert_ok(at)
    link = link_of(at)
    assert link.startswith("http://") and "/embeddings?" in link
    again = reopen(link, "pages/embeddings.py")
    assert again.sidebar.button_group(key="ckpt").value == steps[0]
    assert again.sidebar.selectbox(key="emb_left").value == "random.s1"
    assert again.sidebar.selectbox(key="emb_site").value == "layer.00"
    assert again.sidebar.radio(key="emb_method").value == "PCA"
    assert again.sidebar.selectbox(key="emb_link").value == "arz"
    assert charts(again)[0] == charts(at)[0]                      # the same figure, not only the same widgets

    at.switch_page("pages/translate.py").run()
    ids = at.selectbox(key="tr_sid").options
    at.selectbox(key="tr_sid").select_index(3).run()
    at.sidebar.selectbox(key="tr_right").set_value("random.s1").run()
    at.sidebar.toggle(key="tr_on").set_value(True).run()
    at.sidebar.slider(key="tr_alpha").set_value(0.55).run()
    at.sidebar.radio(key="tr_target").set_value("right").run()
    assert_ok(at)
    link = link_of(at)
    assert "/translate?" in link and f"ckpt={steps[0]}" in link      # the checkpoint chosen on Embeddings
    again = reopen(link, "pages/translate.py")
    assert again.selectbox(key="tr_sid").value == at.selectbox(key="tr_sid").value and len(ids) > 3
    assert again.sidebar.selectbox(key="tr_right").value == "random.s1"
    assert again.sidebar.toggle(key="tr_on").value is True
    assert again.sidebar.slider(key="tr_alpha").value == pytest.approx(0.55)
    assert again.sidebar.radio(key="tr_target").value == "right"
    assert again.sidebar.button_group(key="ckpt").value == steps[0]
    outputs = [m.value for m in again.markdown if "decoupling α=0.55" in m.value]
    assert outputs and outputs == [m.value for m in at.markdown if "decoupling α=0.55" in m.value]

    at.switch_page("pages/subspace.py").run()
    at.sidebar.selectbox(key="sub_arm").set_value("decoupled.s1").run()
    at.selectbox(key="sub_dialect").set_value("ary").run()
    at.radio(key="sub_metric").set_value("code_length_bits").run()
    assert_ok(at)
    again = reopen(link_of(at), "pages/subspace.py")
    assert again.sidebar.selectbox(key="sub_arm").value == "decoupled.s1"
    assert again.selectbox(key="sub_dialect").value == "ary"
    assert again.radio(key="sub_metric").value == "code_length_bits"

    at.switch_page("pages/home.py").run()
    at.radio(key="home_kind").set_value("dialect → MSA").run()
    at.selectbox(key="home_system").set_value("random").run()
    again = reopen(link_of(at), "pages/home.py")
    assert again.radio(key="home_kind").value == "dialect → MSA" and again.selectbox(key="home_system").value == "random"

    at.switch_page("pages/error_analysis.py").run()
    at.multiselect(key="ea_dirs").set_value(["arb-arz"]).run()
    at.toggle(key="ea_diff").set_value(True).run()
    again = reopen(link_of(at), "pages/error_analysis.py")
    assert again.multiselect(key="ea_dirs").value == ["arb-arz"] and again.toggle(key="ea_diff").value is True
    assert "experiment=tiny" in link_of(again)


def test_every_table_has_a_csv_and_exports_are_named(app):
    """Issue 21 item 10: every table of every page has a CSV button under it (the error-analysis rows have the
    page's own CSV/JSONL exports), and every file name (PNG/SVG of a figure, CSV, JSONL) carries the experiment,
    and the arm, seed, layer and step where the view has them."""
    at = app("pages/home.py")
    figs, files = {}, {}
    for page in ("pages/home.py", "pages/embeddings.py", "pages/subspace.py", "pages/error_analysis.py"):
        at.switch_page(page).run()
        assert_ok(at)
        tables = sum(m.value.count('class="dde-table"') for m in at.markdown) + len(at.dataframe)
        own = 1 if page == "pages/error_analysis.py" else 0           # exported by the page's own buttons
        csv = [b.proto.help for b in at.get("download_button") if b.proto.label == "CSV"]
        assert tables > 0 and len(csv) == tables - own, (page, tables, csv)
        files[page] = [re.search(r"as (\S+\.csv)$", h).group(1) for h in csv]
        assert all(f.startswith(("tiny_", "dde_")) for f in files[page]), files[page]
        figs[page] = [json.loads(c.proto.config)["toImageButtonOptions"]["filename"] for c in at.get("plotly_chart")]
        assert all(n.startswith("tiny_") for n in figs[page]), (page, figs[page])
    assert "tiny_chrf-per-direction.csv" in files["pages/home.py"]
    assert any(re.fullmatch(r"tiny_distance-to-msa_decoupled_seed0_layer\d\d_step\d+\.csv", f)
               for f in files["pages/embeddings.py"]), files["pages/embeddings.py"]
    assert "tiny_probe-gate_decoupled_seed0.csv" in files["pages/subspace.py"]
    assert any(re.fullmatch(r"tiny_embedding_baseline_seed0_layer\d\d_step\d+_UMAP", n)
               for n in figs["pages/embeddings.py"]), figs["pages/embeddings.py"]
    assert any(re.fullmatch(r"tiny_energy_decoupled_seed0_layer\d\d", n) for n in figs["pages/subspace.py"])
    assert any(n.startswith("tiny_delta-map_decoupled_MSA-dialect") for n in figs["pages/home.py"])


def test_error_analysis_compares_the_pair_the_reader_picks(app, app_root):
    """Issue 21 item 5: the Δ is any seed pair or an arm's mean over its seeds (the mean by default), the table
    sorts by |Δ| (largest first) or by "outputs differ", and all of it is in the link."""
    from explorer.experiment.view import load_experiment

    hyps = load_experiment(app_root / "tiny").hypotheses()
    at = app("pages/error_analysis.py")
    assert (at.selectbox(key="ea_sys").value, at.selectbox(key="ea_ref").value) == ("decoupled", "baseline")

    def first_delta(at) -> float:
        table = next(m.value for m in at.markdown if 'class="dde-table"' in m.value)
        return float(re.search(r"Δ ([+-]\d+\.\d)<", table).group(1))

    mean = (hyps[["chrf_decoupled.s0", "chrf_decoupled.s1"]].mean(axis=1)
            - hyps[["chrf_baseline.s0", "chrf_baseline.s1"]].mean(axis=1))
    assert abs(first_delta(at)) == pytest.approx(mean.abs().max(), abs=0.051)
    at.selectbox(key="ea_sys").set_value("decoupled.s1").run()
    at.selectbox(key="ea_ref").set_value("baseline.s0").run()
    assert_ok(at)
    cross = hyps["chrf_decoupled.s1"] - hyps["chrf_baseline.s0"]
    assert abs(first_delta(at)) == pytest.approx(cross.abs().max(), abs=0.051)
    assert "decoupled · seed 1 beats baseline · seed 0 on" in next(r.value for r in at.markdown if "This run:" in r.value)
    at.selectbox(key="ea_sort").set_value("differ").run()
    assert_ok(at)
    again = reopen(link_of(at), "pages/error_analysis.py")
    assert again.selectbox(key="ea_sys").value == "decoupled.s1" and again.selectbox(key="ea_ref").value == "baseline.s0"
    assert again.selectbox(key="ea_sort").value == "differ" and again.toggle(key="ea_asc").value is False
    table = next(m.value for m in again.markdown if 'class="dde-table"' in m.value)
    first = re.search(r"(flores-[\w-]+?\d+)<", table).group(1)
    differs = hyps[hyps["hyp_decoupled.s1"].fillna("").str.split().str.join(" ")
                   != hyps["hyp_baseline.s0"].fillna("").str.split().str.join(" ")]
    assert first in set(differs["sent_id"])                     # outputs that differ come first


def test_the_dialect_guess_is_honest_on_every_page(app):
    """Issue 21 item 6: each output shows its three likeliest varieties; a garbled or MSA output is never named a
    dialect; Home says what the outputs not called MSA hold."""
    at = app("pages/error_analysis.py")
    outputs = [m.value for m in at.markdown if 'class="dde-output"' in m.value]
    heads = [o.split('<div class="dde-output"')[0] for o in outputs]
    assert heads and all("top three:" in h or "empty output" in h for h in heads), heads
    assert not any("looks like" in h and ("garbled" in h or "reads as MSA" in h) for h in heads)
    assert any("garbled (" in h or "reads as MSA" in h or "no confident guess" in h for h in heads)
    at.switch_page("pages/translate.py").run()
    assert_ok(at)
    lines = [m.value for m in at.markdown if "top three:" in m.value]
    assert len(lines) == 2 and not any("Looks like" in x and "garbled" in x for x in lines)
    at.switch_page("pages/home.py").run()
    assert_ok(at)
    held = next(m.value for m in at.markdown if 'class="dde-table"' in m.value and ">no confident guess<" in m.value)
    assert ">garbled<" in held and ">the requested dialect<" in held and ">decoupled<" in held


def test_a_link_to_a_missing_experiment_says_so(app_root, monkeypatch):
    """A link naming an experiment that is not under the cache root says so and shows nothing else, instead of
    quietly opening another experiment; picking one in the sidebar then shows it."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DDE_CACHE_ROOT", str(app_root))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params = {"experiment": "madar-25", "ea_dirs": "MSA → Egyptian"}
    at.switch_page("pages/error_analysis.py").run()
    assert not at.exception
    assert any("`madar-25`, which is not under" in w.value and "`tiny`" in w.value for w in at.warning)
    assert not at.title and not at.get("multiselect")                       # no other experiment shown
    at.sidebar.selectbox(key="experiment").set_value(str(app_root / "tiny")).run()
    assert_ok(at)
    assert at.title[0].value == "Error analysis" and not at.warning


def test_notes_per_output_survive_a_restart(app, app_root):
    at = app("pages/error_analysis.py")
    key = at.selectbox(key="ea_item").value
    target = at.button_group(key="ea_target").value
    assert target in ("base", "baseline", "decoupled", "random")
    slot = f"{key}|{target}"
    at.multiselect(key=f"ea_tags_{slot}").select("MSA leakage").run()
    at.text_area(key=f"ea_comment_{slot}").input("keeps the MSA negation").run()
    at.button(key="ea_save").click().run()
    assert_ok(at)
    saved = json.loads((app_root / "tiny" / "annotations.json").read_text())
    assert saved["format"] == 2
    note = saved["items"][key]["outputs"][target]
    assert note["tags"] == ["MSA leakage"] and note["comment"] == "keeps the MSA negation"

    again = app("pages/error_analysis.py")                  # a new session: the server was restarted
    assert again.selectbox(key="ea_item").value == key
    assert again.text_area(key=f"ea_comment_{slot}").value == "keeps the MSA negation"
    assert again.multiselect(key=f"ea_tags_{slot}").value == ["MSA leakage"]
    assert any("your tags: MSA leakage" in m.value for m in again.markdown)
    (app_root / "tiny" / "annotations.json").unlink()


def test_malformed_notes_are_reported_not_overwritten(app, app_root):
    path = app_root / "tiny" / "annotations.json"
    path.write_text('{"format": 1, "items": {oops')
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/error_analysis.py").run()
    assert not at.exception
    assert any("not a valid annotations file" in e.value for e in at.error)
    assert at.button(key="ea_save").disabled
    assert path.read_text() == '{"format": 1, "items": {oops'
    assert at.button(key="ea_quarantine").disabled          # moving it aside needs a confirmation
    at.checkbox(key="ea_sure").check().run()
    at.button(key="ea_quarantine").click().run()
    assert not path.exists()
    moved = list(path.parent.glob("annotations.json.bad-*"))
    assert len(moved) == 1 and moved[0].read_text() == '{"format": 1, "items": {oops'
    assert not at.error
    assert not at.button(key="ea_save").disabled
    moved[0].unlink()


def test_empty_cache_shows_run_button(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DDE_CACHE_ROOT", str(tmp_path / "empty"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.button(key="run_default").label == "Run the default experiment"
    assert any("No experiment" in i.value for i in at.info)
    for page in ("pages/embeddings.py", "pages/subspace.py", "pages/translate.py", "pages/error_analysis.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert any("no experiment" in i.value.lower() for i in at.info)


def test_unreadable_experiment_is_reported(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    bad = tmp_path / "old"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"format_version": 99, "config": {}}')
    monkeypatch.setenv("DDE_CACHE_ROOT", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("format version 99" in e.value for e in at.error)
    assert "cannot be read" in at.dataframe[0].value["status"].iloc[0]


def test_run_button_starts_one_run_only(tmp_path, monkeypatch):
    """Click Run, then 'refresh' in a second session and click again: one process, followed by both."""
    from streamlit.testing.v1 import AppTest

    from explorer.experiment.layout import Experiment
    from explorer.ui import runner

    monkeypatch.setenv("DDE_CACHE_ROOT", str(tmp_path))
    monkeypatch.setenv(runner.ENV_PRESET, "tiny")
    folder = tmp_path / "tiny"
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.button(key="run_default").click().run()
    pid = Experiment(folder).running_pid()
    try:
        assert pid is not None
        second = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        assert not second.exception
        assert "run_default" not in [b.key for b in second.button]
        assert any("Running" in m.value for m in second.markdown)
        again, started = runner.start(folder)
        assert (again, started) == (pid, False)
        assert runner.status(folder).running
    finally:
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)       # the run we started (its own process group)
            deadline = time.time() + 30
            while Experiment(folder).running_pid() is not None and time.time() < deadline:
                time.sleep(0.2)


def test_runner_reads_the_run_state(tmp_path):
    from explorer.experiment.layout import Experiment
    from explorer.experiment.lock import RunLock
    from explorer.files import atomic_write_text
    from explorer.ui import runner

    folder = tmp_path / "default"
    assert runner.status(folder) is None                       # never started: the page offers the button
    exp = Experiment(folder)
    folder.mkdir()
    exp.write_progress(status="running", stage="decoupled", step=50, total=200, loss=3.2, eta_s=90.0,
                       probe_accuracy=0.8, done_stages=["prepare", "base"])
    atomic_write_text(exp.lock_path, "999999999")              # no such process
    s = runner.status(folder)
    assert s.state == "stopped" and not s.running and s.fraction == 0.25 and s.probe_accuracy == 0.8
    atomic_write_text(exp.lock_path, str(os.getpid()))         # a stale file naming a live pid holds nothing
    assert not runner.status(folder).running
    with RunLock(exp):                                           # a live process holds the folder
        s = runner.status(folder)
        assert s.running and s.state == "running" and s.stage == "decoupled"
        assert runner.start(folder) == (os.getpid(), False)     # refused: no second run
    assert runner.format_eta(90) == "1 min 30 s" and runner.format_eta(None) == "—"


def test_filters():
    import pandas as pd

    from explorer.analysis.errors import filter_table

    df = pd.DataFrame({"direction": ["arb-arz", "arb-ary"], "variety": ["arz", "ary"], "delta": [1.0, -2.0],
                       "sent_id": ["s1", "s2"], "source": ["مرحبا", "أهلا"], "ref": ["x", "y"],
                       "hyp_baseline": ["إزيك", "لاباس"]})
    assert list(filter_table(df, directions=["arb-ary"])["sent_id"]) == ["s2"]
    assert list(filter_table(df, delta_range=(0.0, 5.0))["sent_id"]) == ["s1"]
    assert list(filter_table(df, search="لاباس")["sent_id"]) == ["s2"]
    assert len(filter_table(df)) == 2


# ---------------------------------------------------------------- dialect identification


@pytest.fixture(scope="module")
def view(app_root):
    from explorer.experiment.view import load_experiment

    return load_experiment(app_root / "tiny")


def test_dialect_id_beats_chance_and_round_trips(view, tmp_path):
    from explorer.data.sources import load_corpus
    from explorer.evaluation import dialect_id

    clf = view.classifier()
    assert set(clf.classes) == set(view.varieties)
    assert clf.test_accuracy > 2.0 / len(clf.classes)        # chance is 1/3 for the tiny run's 3 varieties
    cfg = view.config
    test = load_corpus(cfg.data, dev=cfg.dev_size, test=cfg.test_size, seed=cfg.seed).split("test")
    preds = clf.predict(test["arz"].tolist())
    assert np.mean([p.variety == "arz" for p in preds]) > 0.5
    assert clf.predict_one("The weather is nice today.").variety == dialect_id.OTHER_SCRIPT
    # stored as JSON + npz (no pickle), reloaded identically
    files = {p.name for p in view.exp.dialect_id_dir.iterdir() if not p.name.endswith(".check")}   # check records
    assert files == {"model.json", "weights.npz"}
    again = view.classifier()
    texts = test["ary"].tolist()[:5]
    assert np.array_equal(again.proba(texts), clf.proba(texts))


def test_dialect_id_matches_sklearn(view):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.naive_bayes import MultinomialNB

    from explorer.data.sources import load_corpus
    from explorer.evaluation import dialect_id

    cfg = view.config
    corpus = load_corpus(cfg.data, dev=cfg.dev_size, test=cfg.test_size, seed=cfg.seed)
    vs = [HR, "arz"]
    ours = dialect_id.fit(corpus.split("train"), corpus.split("test"), vs)
    x, y = dialect_id._long(corpus.split("train"), vs)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=dialect_id.NGRAMS, sublinear_tf=True,
                          max_features=dialect_id.MAX_FEATURES)
    ref = MultinomialNB(alpha=0.1).fit(vec.fit_transform(x), y)
    xt, _ = dialect_id._long(corpus.split("test"), vs)
    assert np.allclose(ref.predict_proba(vec.transform(xt)), ours.proba(xt), atol=1e-9)


# ---------------------------------------------------------------- annotations


def test_annotations_round_trip_and_validation(tmp_path):
    from explorer.experiment.annotations import DEFAULT_TAGS, AnnotationStore, item_key

    store = AnnotationStore(tmp_path)
    assert store.load().tags == DEFAULT_TAGS and not store.load().items
    k = item_key("arb-arz", "flores-devtest-0001")
    store.save_note(k, ["orthography"], "  hamza dropped ")
    assert AnnotationStore(tmp_path).load().note(k).comment == "hamza dropped"
    with pytest.raises(ValueError, match="unknown tag"):
        store.save_note(k, ["not a tag"], "")
    with pytest.raises(ValueError, match="still used"):
        store.save_tags(["MSA leakage"])
    store.save_tags([*DEFAULT_TAGS, "code-switching"])
    store.save_note(k, ["code-switching"], "")
    assert store.load().note(k).tags == ("code-switching",)
    store.save_note(k, [], "")                            # clearing a note removes it
    assert k not in store.load().items
    assert not list(tmp_path.glob(".annotations.json.*.tmp"))  # atomic writes leave nothing behind


def test_annotations_keep_fields_they_do_not_know(tmp_path):
    """A file written by a newer version (or by hand) with extra keys keeps them through every kind of save."""
    from explorer.experiment.annotations import DEFAULT_TAGS, AnnotationStore

    store = AnnotationStore(tmp_path)
    store.path.write_text(json.dumps({
        "format": 1, "tags": list(DEFAULT_TAGS), "reviewers": ["amina"], "settings": {"colour": "red"},
        "items": {"arb-arz|s1": {"tags": ["good"], "comment": "fine", "updated": "x", "model": "decoupled",
                                 "severity": 2},
                  "arb-ary|s2": {"tags": [], "comment": "", "flagged_by": "amina"}}}), encoding="utf-8")
    store.save_note("arb-arz|s1", ["orthography"], "hamza")          # edit a note that has extra keys
    store.save_note("arb-aeb|s3", ["good"], "new note")              # add another
    store.save_tags([*DEFAULT_TAGS, "calque"])                        # change the tag list
    saved = json.loads(store.path.read_text(encoding="utf-8"))
    assert saved["reviewers"] == ["amina"] and saved["settings"] == {"colour": "red"}
    s1 = saved["items"]["arb-arz|s1"]
    assert s1["model"] == "decoupled" and s1["severity"] == 2
    assert s1["tags"] == ["orthography"] and s1["comment"] == "hamza"
    assert saved["items"]["arb-ary|s2"] == {"flagged_by": "amina", "tags": [], "comment": "", "updated": ""}
    store.save_note("arb-arz|s1", [], "")                              # cleared: its unknown keys still stay
    assert json.loads(store.path.read_text(encoding="utf-8"))["items"]["arb-arz|s1"]["severity"] == 2


@pytest.mark.parametrize("content", ["{not json", "[]", '{"format": 1, "items": {"a": {"tags": "x"}}}',
                                     '{"format": 99}', b"\xff\xfe"])
def test_damaged_annotations_are_never_overwritten(tmp_path, content):
    from explorer.experiment.annotations import AnnotationsError, AnnotationStore

    store = AnnotationStore(tmp_path)
    if isinstance(content, bytes):
        store.path.write_bytes(content)
    else:
        store.path.write_text(content)
    before = store.path.read_bytes()
    with pytest.raises(AnnotationsError, match=str(store.path.name)):
        store.load()
    with pytest.raises(AnnotationsError):
        store.save_note("k", [], "a comment")
    assert store.path.read_bytes() == before
    moved = store.quarantine()
    assert moved.name.startswith("annotations.json.bad-") and moved.read_bytes() == before
    assert store.load().items == {}


# ---------------------------------------------------------------- translate


@pytest.fixture(scope="module")
def handle(view):
    from explorer.evaluation.single import ModelHandle

    model, tok = view.load_model("decoupled.s0")
    return ModelHandle(model, tok, "decoupled.s0", view.checkpoints("decoupled.s0")[-1])


@pytest.mark.parametrize("text,src,message", [
    ("", HR, "empty"),
    ("   ", "arz", "empty"),
    ("Where is the station?", HR, "not in Arabic script"),
    ("أين المحطة؟", ENG, "Arabic script"),
    ("ب" * 1001, HR, "characters long"),
    ("كلمة " * 199, HR, "tokens long"),
])
def test_translate_rejects_bad_input(view, handle, text, src, message):
    from explorer.evaluation.single import translate_text

    tgt = "arz" if src != "arz" else HR
    with pytest.raises(ValueError, match=message):
        translate_text(handle, [*view.varieties, ENG], text, src, tgt, max_len=view.config.max_len,
                       max_new_tokens=4)


def test_switch_off_is_bit_identical(view, handle):
    from explorer.evaluation.decoding import translate
    from explorer.evaluation.single import translate_text
    from explorer.method.hooks import Projection, count_hooks
    from explorer.model.prompts import encoder_for

    model, tok = handle.model, handle.tokenizer
    subs = view.projection("decoupled.s0", handle.step, 1.0).subspaces
    assert set(subs) == set(view.penalised_sites)
    ids = torch.tensor([tok(" مرحبا بالعالم", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        for on, alpha in ((False, 1.0), (True, 0.0)):
            with Projection(subs, alpha if on else 0.0).context(model):
                assert count_hooks(model) == 0
                assert torch.equal(model(input_ids=ids).logits, plain)
        with Projection(subs, 1.0).context(model):
            assert count_hooks(model) == len(subs)
            assert not torch.equal(model(input_ids=ids).logits, plain)
    assert count_hooks(model) == 0
    codes = [*view.varieties, ENG]
    text = "يقول المركز الوطني للأعاصير إنه لا يشكل أي تهديد."
    cfg = view.config
    off = translate_text(handle, codes, text, HR, "arz", max_len=cfg.max_len, max_new_tokens=cfg.max_new_tokens,
                         projection=Projection(subs, 0.0))
    ref = translate(model, tok, encoder_for(model, tok, codes, cfg.max_len), [(HR, "arz", text)],
                    max_new_tokens=cfg.max_new_tokens)[0]
    assert off.text == ref and off.alpha == 0.0 and off.sites == ()
    full = translate_text(handle, codes, text, HR, "arz", max_len=cfg.max_len, max_new_tokens=cfg.max_new_tokens,
                          projection=Projection(subs, 1.0))
    assert full.alpha == 1.0 and full.msa_share < 1e-4 < off.msa_share
    assert count_hooks(model) == 0


# ---------------------------------------------------------------- the app reads, never writes


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_pages_write_nothing_and_leave_cached_figures_as_built(tiny_experiment, tmp_path, monkeypatch):
    """Rendering every page (Embeddings with UMAP, Translate with a model) adds or changes no file in the
    experiment folder, and every figure the app caches for all sessions is, after the renders, what was built."""
    from streamlit.testing.v1 import AppTest

    from explorer.ui import cache

    shutil.copytree(tiny_experiment, tmp_path / "tiny")
    monkeypatch.setenv("DDE_CACHE_ROOT", str(tmp_path))
    built = []
    for name, make in list(cache.FIGURES.items()):
        def record(*args, _make=make):
            fig = _make(*args)
            built.append((fig, fig.to_json()))
            return fig
        monkeypatch.setitem(cache.FIGURES, name, record)
    before = _files(tmp_path / "tiny")
    for page in ("pages/home.py", "pages/embeddings.py", "pages/subspace.py", "pages/translate.py",
                 "pages/error_analysis.py"):
        for _ in range(2):                         # the second render takes the cached figures
            at = AppTest.from_file(APP, default_timeout=TIMEOUT)
            at.run()
            at.switch_page(page).run()
            if page == "pages/embeddings.py":
                at.sidebar.radio(key="emb_method").set_value("UMAP").run()
            assert_ok(at)
    assert len(built) >= 5
    changed = [json.loads(js).get("layout", {}).get("title") for fig, js in built if fig.to_json() != js]
    assert not changed, f"cached figures changed after they were built: {changed}"
    assert _files(tmp_path / "tiny") == before
