"""Evaluation: decoding (``decoding``), chrF++ and its intervals (``chrf``), which variety an output looks like
(``dialect_id``), and one sentence through one model with the decoupling switch (``single``)."""


