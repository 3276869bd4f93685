"""Built-in defenses (installed as robustbench_lite.defenses); modules are imported so their registrations run."""

from robustbench_lite.core.registry import import_submodules

import_submodules(__name__, __path__)
