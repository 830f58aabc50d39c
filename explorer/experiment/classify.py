"""Which variety an output looks like: the experiment's two character n-gram classifiers, fitted once by the
evaluation stage and stored in the experiment folder (``dialect_classifier``, ``msa_classifier``); readers such as
the app take them with ``stored_classifier``, which never writes.

- ``dialect_classifier``: all of the run's varieties (MSA and each dialect): "assigned to the requested dialect";
- ``msa_classifier``: MSA against every dialect merged (balanced): *MSA leakage*, the share of MSA→dialect outputs
  it calls MSA (the paper's story, "the model drifts back to MSA", measured directly).

Both are trained on the training split of the experiment's corpus and scored on its test split
(``evaluation.dialect_id``), so the accuracy shown beside any of their numbers is an honest one.
"""

from __future__ import annotations

from ..config import RunConfig
from ..evaluation import dialect_id
from .layout import Experiment


def _load_or_fit(exp: Experiment, cfg: RunConfig, varieties: list[str], msa_vs_dialect: bool
                 ) -> dialect_id.DialectClassifier:
    folder = exp.msa_id_dir if msa_vs_dialect else exp.dialect_id_dir
    key = dialect_id.key_for(cfg, varieties, msa_vs_dialect)
    model = dialect_id.load(folder, key)
    if model is not None:
        return model
    model = dialect_id.fit_for(cfg, varieties, msa_vs_dialect)
    dialect_id.save(model, folder, key)
    return model


def stored_classifier(exp: Experiment, cfg: RunConfig, varieties: list[str], *, msa_vs_dialect: bool
                      ) -> dialect_id.DialectClassifier:
    """For readers (the app): the classifier the evaluation stage stored, or, in a folder without one (made before
    the stage stored them), one fitted in memory. Never writes into the experiment folder."""
    folder = exp.msa_id_dir if msa_vs_dialect else exp.dialect_id_dir
    stored = dialect_id.load(folder, dialect_id.key_for(cfg, varieties, msa_vs_dialect))
    return stored if stored is not None else dialect_id.fit_for(cfg, varieties, msa_vs_dialect)


def dialect_classifier(exp: Experiment, cfg: RunConfig, varieties: list[str]) -> dialect_id.DialectClassifier:
    return _load_or_fit(exp, cfg, varieties, False)


def msa_classifier(exp: Experiment, cfg: RunConfig, varieties: list[str]) -> dialect_id.DialectClassifier:
    return _load_or_fit(exp, cfg, varieties, True)
