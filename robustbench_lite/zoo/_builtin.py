"""The built-in zoo entries: importing this module (the ``builtin`` entry point of the
``robustbench_lite.zoo`` group) imports every public module of the zoo package."""

import robustbench_lite.zoo as _zoo
from robustbench_lite.core.registry import import_submodules

import_submodules(_zoo.__name__, _zoo.__path__)
