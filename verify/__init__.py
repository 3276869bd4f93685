"""Built-in verify (installed as robustbench_lite.verify); modules are imported so their registrations run."""

from robustbench_lite.core.registry import import_submodules

import_submodules(__name__, __path__)
