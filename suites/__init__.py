"""Built-in suites, shipped as package data and referenced as ``builtin:NAME``."""
