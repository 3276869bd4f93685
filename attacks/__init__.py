"""Built-in attacks (installed as ``robustbench_lite.attacks``).

Every public module of this package is imported here so that its ``@register_attack`` runs;
the registry loads this package through the ``robustbench_lite.attacks`` entry point.
Modules must keep heavy optional imports (foolbox, ...) inside functions.
"""

from robustbench_lite.core.registry import import_submodules

import_submodules(__name__, __path__)
