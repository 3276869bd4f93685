"""Example robustbench_lite plug-in (see README, "Your own attack")."""
