"""Translate: one sentence by two models side by side, with the inference-time decoupling switch."""

import streamlit as st

from explorer.analysis import guess
from explorer.data.varieties import ENG, HR, variety_label
from explorer.evaluation.chrf import sentence_chrf
from explorer.evaluation.dialect_id import CONFIDENT
from explorer.ui import cache, links, shell, widgets

shell.page_setup()
st.title("Translate")
exp = widgets.current_experiment() or widgets.no_experiment()
view = cache.view(exp)
if not view.arms:
    st.info("This experiment has no fine-tuned model yet; come back when its first arm has a checkpoint.")
    st.stop()
clf = cache.classifier(exp)
tests = cache.test_sentences(exp)

codes = [c for c in (*view.varieties, ENG) if c in tests.columns or c != ENG]
c1, c2, c3 = st.columns([1, 1, 2])
src = links.bound(c1.selectbox, "From", codes, index=codes.index(HR), key="tr_src", format_func=variety_label)
tgt_options = [c for c in codes if c != src]
default_tgt = next((c for c in tgt_options if c not in (HR, ENG)), tgt_options[0])
tgt = links.bound(c2.selectbox, "To", tgt_options, index=tgt_options.index(default_tgt), key="tr_tgt",
                  format_func=variety_label)
mode = links.bound(c3.radio, "Sentence", ["From the test set", "Type my own"] if not tests.empty else ["Type my own"],
                   key="tr_mode", horizontal=True)

reference = None
if mode == "From the test set" and not tests.empty and src in tests.columns:
    rows = tests.dropna(subset=[src])
    ids = rows["sent_id"].tolist()
    by_id = rows.set_index("sent_id")
    sid = links.bound(st.selectbox, "Test sentence (type to search)", ids, key="tr_sid",
                      format_func=lambda i: f"{i} · {by_id.at[i, src][:90]}")
    text = by_id.at[sid, src]
    ref = by_id.at[sid, tgt] if tgt in by_id.columns else None
    reference = ref if isinstance(ref, str) and ref else None
else:
    text = links.bound(st.text_area, "Your sentence", key="tr_text", max_chars=1000, height=90,
                       placeholder="اكتب جملة هنا" if src != ENG else "Type a sentence here")
if text:
    widgets.sentence(text, src, label=f"Source · {variety_label(src)}")
if reference is not None:
    widgets.sentence(reference, tgt, label=f"Reference · {variety_label(tgt)}")

side = st.sidebar
step = widgets.checkpoint_control(exp)
left = widgets.model_picker(exp, "tr_left", label="Left model", default="baseline")
right = widgets.model_picker(exp, "tr_right", label="Right model", default="decoupled")
st.sidebar.divider()
on = links.bound(side.toggle, "Inference-time decoupling", key="tr_on",
                 help="Remove the MSA subspace from the hidden states while decoding: h ← h − α·U Uᵀ h at "
                      f"{', '.join(view.penalised_sites)}.")
alpha = links.bound(side.slider, "Strength α", 0.0, 1.0, 1.0, 0.05, key="tr_alpha", disabled=not on)
target = links.bound(side.radio, "Apply it to", ["left", "right"], index=0, key="tr_target", horizontal=True,
                     format_func={"left": f"left ({left})", "right": f"right ({right})"}.get, disabled=not on)
switched = left if target == "left" else right
switched_step = 0 if switched == "base" else widgets.nearest_step(exp, switched, step)
side.caption(f"Removes from **{widgets.model_label(switched)}** at step {switched_step}: "
             f"{cache.subspace_source(exp, switched, switched_step)}.")
st.sidebar.caption(f"Dialect ID: character n-gram classifier, {clf.test_accuracy:.0%} accurate on the test split "
                   f"over {len(clf.classes)} varieties. Its three likeliest varieties are shown; it names one only "
                   f"when it is at least {CONFIDENT:.0%} sure, the output is not garbled and is not called MSA.")

cols = st.columns(2)
for col, side_name, name in ((cols[0], "left", left), (cols[1], "right", right)):
    s = 0 if name == "base" else widgets.nearest_step(exp, name, step)
    strength = float(alpha) if on and target == side_name else 0.0    # 0 = off: the one place it is decided
    with col:
        st.markdown(f"#### {widgets.model_label(name)}")
        try:
            out = cache.translation(exp, name, s, src, tgt, text or "", strength)
        except ValueError as e:
            st.warning(str(e))
            continue
        extra = (f" · decoupling α={out.alpha:g} at {', '.join(out.sites)} with "
                 f"{cache.subspace_source(exp, name, s)}" if out.alpha else "")
        widgets.sentence(out.text, tgt, label=f"step {out.step}{extra}")
        g = guess.guesses(clf, [out.text], [reference or ""], known=cache.lexicon(exp),
                          msa=cache.msa_classifier(exp))[0]
        st.markdown((f"Looks like **{variety_label(g.label)}**" if g.label else f"Dialect: {g.why}")
                    + (f" · top three: {guess.top_text(g.top)}" if g.top else ""))
        m = st.columns(2)
        m[0].metric("chrF++ vs reference", f"{sentence_chrf(out.text, reference):.1f}" if reference else "—")
        m[1].metric("MSA-subspace share", f"{out.msa_share:.3f}" if out.msa_share is not None else "—",
                    help="Mean ‖Uᵀh‖/‖h‖ of the source tokens at the penalised layer, as the next layer sees them")
        st.caption(f"{out.seconds:.2f} s" + (f" · read the first {out.read_tokens} of {out.source_tokens} tokens "
                                             "(the models were trained on shorter sentences)" if out.truncated else ""))
st.caption("How to read it: the two boxes are the same sentence translated by two models. Switch decoupling on to "
           "remove the MSA directions from one model's hidden states while it translates: the MSA-subspace share "
           "drops to ~0 at α = 1 and the output may change. A changed output is not by itself more dialectal: "
           "compare its chrF++ with the reference, and trust a dialect guess only when one is shown (the classifier "
           "is confident); a garbled output is often guessed as some dialect with a low probability.")
