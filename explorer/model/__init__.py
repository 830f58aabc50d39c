"""Models: site names, the tokenizer and small default model, loading any local causal LM, weights.

A *site* is the residual-stream output of one decoder layer. It has one name everywhere (hooks,
cache files, selectboxes, plot labels): ``site_name(2) == "layer.02"`` (``sites``).
"""


