"""Harness: what a run produced, and its renderings.

The report model (``Report``, ``CheckResult``), the result-to-values conversion used by every
front door, the output formats as a registry (table, json, md, junit, html) and the comparison
against a baseline report.

May import: ``core`` (and the content rooms for facts about models); never ``suite`` or the faces.
"""
