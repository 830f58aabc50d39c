"""The method (docs/design.md §2), one idea per module, in the order a refit uses them.

``subspace`` (the frozen result: ``Subspace``, random draws, principal angles, energy share) ←
``variational`` (the Bayesian linear layer) ← ``probe`` (the fitter that hands out a ``Subspace``);
``online_code`` (the prequential code, an alternative estimate); ``hooks`` (capture and projection, only inside
context managers); ``decoupler`` (online re-estimation and the loss term of the decoupled and random arms).
"""


