"""Built-in attacks (installed as ``robustbench_lite.attacks``).

Every public module of this package is imported here so that its ``@register_attack`` runs;
the registry loads this package through the ``robustbench_lite.attacks`` entry point.
Modules must keep heavy optional imports (foolbox, ...) inside functions.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
