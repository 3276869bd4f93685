"""Built-in data sources; each module exposes ``load(split, **kw) -> (x, y)``."""
