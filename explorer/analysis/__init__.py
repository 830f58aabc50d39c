"""Analysis of trained models: pooled sentence representations (``pooling``), their on-disk cache format
(``repcache``, the one owner of what lies under ``represent/``), geometry (``geometry``), and the error-analysis
table of test translations (``errors``)."""


