"""The kernel: the abstractions every other layer speaks.

Holds the value types (norms, goals, statuses, inputs), every error class, the threat model,
the ``Model`` wrapper, the ``Attack`` / ``Verifier`` / ``Defense`` / ``Detector`` bases, the
component registries and small file helpers (cache folder, atomic writes).

May import: torch, numpy and the standard library only. Nothing in ``core`` knows about
datasets, the zoo, suites, reports or the command line.
"""
