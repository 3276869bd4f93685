"""Content: the small simulated worlds and domain helpers that attacks, the zoo and data share.

The procedural camera+LiDAR fusion world and its camera geometry, spiking neurons with their
surrogate gradients, and the text vocabulary with the text classifier shapes.

May import: ``core`` only.
"""
