"""Which Arabic variety does a text look like? A character n-gram classifier for translation outputs.

TF-IDF over character n-grams inside word boundaries (``char_wb``, 1–4 characters, sublinear tf) and a
multinomial naive Bayes, the classic strong baseline for Arabic dialect identification (the MADAR shared task's
best systems were character n-gram NB/linear models, Salameh et al. 2018, Bouamor et al. 2019). On the FLORES
split it matches a logistic regression (about 0.66 test accuracy over 9 varieties) and fits in a second instead
of a minute. It is trained on the *training* split of the experiment's corpus for the experiment's varieties and
scored on the *test* split, so the accuracy shown next to a prediction is an honest one.

A fitted classifier is stored (in a folder the experiment layout chooses) as JSON (vocabulary, classes, scores)
plus an ``.npz`` of plain float arrays (idf, coefficients): no pickle, so a folder handed over by someone else
cannot run code. Prediction re-implements sklearn's TF-IDF transform on those arrays (checked against sklearn in
the tests).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.sources import load_corpus
from ..data.varieties import HR
from ..files import load_npz, read_json, save_npz, write_json

FORMAT = 1


NGRAMS = (1, 4)


MAX_FEATURES = 60_000


OTHER_SCRIPT = "non-Arabic"  # the label of a text that is not mostly in Arabic script (English outputs)
CONFIDENT = 0.6        # a dialect guess is shown only when the classifier gives it at least this probability


def arabic_share(text: str) -> float:
    """Share of the letters in ``text`` that are Arabic-script letters (0 when there are no letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if "\u0600" <= c <= "\u06ff" or "\u0750" <= c <= "\u077f"
               or "\u08a0" <= c <= "\u08ff" or "\ufb50" <= c <= "\ufdff" or "\ufe70" <= c <= "\ufeff") / len(letters)


@dataclass(frozen=True)
class Prediction:
    variety: str          # a variety code, or OTHER_SCRIPT
    probability: float    # the classifier's probability of that variety (1.0 for OTHER_SCRIPT)


@dataclass(frozen=True, eq=False)
class DialectClassifier:
    """A fitted, read-only classifier: ``predict(texts)`` -> one Prediction per text."""

    classes: tuple[str, ...]
    vocabulary: dict[str, int]
    idf: np.ndarray           # (F,)
    coef: np.ndarray          # (C, F)
    intercept: np.ndarray     # (C,)   scores = tfidf(x) @ coef.T + intercept (NB: log P(f|c), log P(c); logistic:
                              #        0 and w, 0 and b)
    test_accuracy: float
    n_train: int
    n_test: int
    per_variety_accuracy: dict[str, float]
    corpus: str

    def _features(self, texts: list[str]):
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import normalize

        counts = CountVectorizer(analyzer="char_wb", ngram_range=NGRAMS, vocabulary=self.vocabulary,
                                 dtype=np.float64).transform(texts)
        counts.data = np.log(counts.data) + 1.0          # sublinear tf, as TfidfTransformer(sublinear_tf=True)
        return normalize(counts.multiply(self.idf).tocsr(), norm="l2")

    def proba(self, texts: list[str]) -> np.ndarray:
        """(n, C) class probabilities: softmax of the joint log-likelihoods, as sklearn's ``predict_proba``."""
        if not texts:
            return np.zeros((0, len(self.classes)))
        z = np.asarray(self._features(list(texts)) @ self.coef.T) + self.intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, texts: list[str]) -> list[Prediction]:
        texts = list(texts)
        p = self.proba(texts)
        out = []
        for t, row in zip(texts, p):
            if arabic_share(t) < 0.5:
                out.append(Prediction(OTHER_SCRIPT, 1.0))
            else:
                i = int(row.argmax())
                out.append(Prediction(self.classes[i], float(row[i])))
        return out

    def predict_one(self, text: str) -> Prediction:
        return self.predict([text])[0]


def _long(frame: pd.DataFrame, varieties: list[str]) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for v in varieties:
        texts += frame[v].astype(str).tolist()
        labels += [v] * len(frame)
    return texts, labels


DIALECT = "dialect"   # the label of every non-MSA variety in the MSA-vs-dialect classifier


def fit(train: pd.DataFrame, test: pd.DataFrame, varieties: list[str], *, corpus: str = "",
        msa_vs_dialect: bool = False) -> DialectClassifier:
    """Fit on ``train`` (a parallel frame, one column per variety) and score on ``test``.

    ``msa_vs_dialect`` fits the binary classifier behind *MSA leakage*: MSA (``arb``) against every dialect merged
    into one label ``"dialect"``, a logistic regression on the same features with balanced class weights (there are
    many more dialect sentences than MSA ones; naive Bayes with uniform priors recognised only 21% of the MSA test
    sentences on the 8 FLORES dialects, 59% balanced accuracy, against 69% and 77% for this); its ``test_accuracy``
    is then the balanced accuracy (the mean of the two classes' recalls), and ``per_variety_accuracy`` says for each
    variety how often its test sentences get their right label."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB

    if len(varieties) < 2:
        raise ValueError(f"dialect identification needs at least two varieties; got {varieties}")
    x_train, v_train = _long(train, varieties)
    x_test, v_test = _long(test, varieties)
    label = (lambda v: v if v == HR else DIALECT) if msa_vs_dialect else (lambda v: v)
    y_train = [label(v) for v in v_train]
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True, max_features=MAX_FEATURES,
                          dtype=np.float64)
    xt = vec.fit_transform(x_train)
    if msa_vs_dialect:
        clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(xt, y_train)
        # two classes, one weight vector (for classes_[1]): as scores, 0 for the first class and w·x + b for the second
        coef = np.vstack([np.zeros_like(clf.coef_[0]), clf.coef_[0]])
        intercept = np.array([0.0, float(clf.intercept_[0])])
    else:
        clf = MultinomialNB(alpha=0.1).fit(xt, y_train)
        coef, intercept = clf.feature_log_prob_, clf.class_log_prior_
    model = DialectClassifier(
        classes=tuple(str(c) for c in clf.classes_),
        vocabulary={str(k): int(v) for k, v in vec.vocabulary_.items()},
        idf=np.asarray(vec.idf_, dtype=np.float64), coef=np.asarray(coef, dtype=np.float64),
        intercept=np.asarray(intercept, dtype=np.float64), test_accuracy=0.0, n_train=len(x_train),
        n_test=len(x_test), per_variety_accuracy={}, corpus=corpus)
    pred = np.array([model.classes[i] for i in model.proba(x_test).argmax(axis=1)])
    truth = np.array([label(v) for v in v_test])
    origin = np.array(v_test)
    per = {v: float((pred[origin == v] == truth[origin == v]).mean()) for v in varieties}
    accuracy = (float(np.mean([(pred[truth == c] == c).mean() for c in set(truth)])) if msa_vs_dialect
                else float((pred == truth).mean()))
    return dataclasses.replace(model, test_accuracy=accuracy, per_variety_accuracy=per)


def _key(cfg, varieties: list[str], msa_vs_dialect: bool = False) -> dict:
    key = {"format": FORMAT, "data": cfg.data, "dev_size": cfg.dev_size, "test_size": cfg.test_size,
           "seed": cfg.seed, "varieties": list(varieties), "ngrams": list(NGRAMS), "max_features": MAX_FEATURES,
           "classifier": "tfidf-char_wb+multinomial-nb"}
    return {**key, "labels": "msa-vs-dialect", "classifier": "tfidf-char_wb+logistic-balanced"} if msa_vs_dialect \
        else key


def save(model: DialectClassifier, folder: Path, key: dict) -> None:
    vocab = [""] * len(model.vocabulary)
    for term, i in model.vocabulary.items():
        vocab[i] = term
    save_npz(folder / "weights.npz", idf=model.idf, coef=model.coef, intercept=model.intercept)
    write_json(folder / "model.json", {
        "key": key, "classes": list(model.classes), "vocabulary": vocab, "test_accuracy": model.test_accuracy,
        "per_variety_accuracy": model.per_variety_accuracy, "n_train": model.n_train, "n_test": model.n_test,
        "corpus": model.corpus, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })


def load(folder: Path, key: dict | None = None) -> DialectClassifier | None:
    """The stored classifier, or None when there is none, it was made for other settings or it is damaged."""
    try:
        meta = read_json(folder / "model.json")
        if key is not None and meta.get("key") != key:
            return None
        z = load_npz(folder / "weights.npz")       # damaged (StoreError, a ValueError): refit
        idf, coef, intercept = z["idf"], z["coef"], z["intercept"]
        vocab = {t: i for i, t in enumerate(meta["vocabulary"])}
        if coef.shape != (len(meta["classes"]), len(vocab)) or idf.shape != (len(vocab),):
            return None
        return DialectClassifier(tuple(meta["classes"]), vocab, idf, coef, intercept, float(meta["test_accuracy"]),
                                 int(meta["n_train"]), int(meta["n_test"]), dict(meta["per_variety_accuracy"]),
                                 str(meta.get("corpus", "")))
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return None


def fit_for(cfg, varieties: list[str], msa_vs_dialect: bool = False) -> DialectClassifier:
    """A classifier for an experiment: ``cfg`` (its RunConfig) names the corpus and split the models saw."""
    corpus = load_corpus(cfg.data, dev=cfg.dev_size, test=cfg.test_size, seed=cfg.seed)
    missing = [v for v in varieties if v not in corpus.frame.columns]
    if missing:
        raise ValueError(f"the {corpus.name} corpus has no column for {missing}; cannot train dialect ID")
    ordered = [HR, *[v for v in varieties if v != HR]] if HR in varieties else list(varieties)
    return fit(corpus.split("train"), corpus.split("test"), ordered, corpus=corpus.name, msa_vs_dialect=msa_vs_dialect)


def key_for(cfg, varieties: list[str], msa_vs_dialect: bool = False) -> dict:
    """What a stored classifier must have been fitted on to be reused for ``cfg``."""
    return _key(cfg, varieties, msa_vs_dialect)


def confident_guess(variety: str | None, probability: float | None, threshold: float = CONFIDENT) -> str | None:
    """The classifier's guess when it is at least ``threshold`` sure, else None (the page says it withheld it)."""
    if variety is None or probability is None or not np.isfinite(probability) or probability < threshold:
        return None
    return variety
