"""Training: the loop shared by the base stage and the arms (``loop``), its resume state (``resume``), and
data-parallel helpers (``distributed``)."""


