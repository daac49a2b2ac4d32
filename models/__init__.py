"""Pure-torch model definitions, training and checkpoint loaders; no runtime or node code."""
