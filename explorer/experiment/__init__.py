"""The experiment: its folder (``layout``, the one owner of every path), the stages that fill it, the whole run,
the report, and the read API the app uses.

In the order a run goes: ``layout`` → ``progress`` → ``models`` (which weights a model name means) → ``stages``
(prepare, base, arms) → ``evaluate`` → ``represent`` → ``run`` (all of them, resumable) → ``report`` (summary,
headline) → ``view`` (read-only access for the app) and ``annotations`` (a linguist's notes).
"""


