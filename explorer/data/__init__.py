"""Data: the varieties table, the embedded corpora, the MADAR loader, and training examples.

Modules in the order data flows: ``varieties`` (codes, names, colours, labels) → ``corpus`` (the parallel-corpus
types and text readers) → ``embedded`` / ``madar`` (loaders) → ``sources`` (one entry point by spec) →
``examples`` (encoding and batches) → ``rundata`` (everything one run trains and evaluates on).
"""


