"""Harness: YAML suites and the runner that scores a model against them.

Holds the YAML nodes and schema, the check kinds (clean, attack, verify, detect: one object per
kind in ``checks``), expectations, the runner with its cells, merge and resumable results store,
and the executors (local, process, ray) as a registry.

May import: ``core``, the content rooms and ``report``; never the faces (``cli``,
``pytest_plugin``) and never a plug-in folder directly (components come through registries).
"""
