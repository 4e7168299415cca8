"""The vectorized engine: K trials of one model trained in lockstep as one stacked network
(see ``loop``); ``network`` converts standard layers and says why a model cannot be."""

ENGINES = ("auto", "sequential", "vectorized")
"""How trials run: auto (vectorized when the model and optimizer allow), sequential (one at a
time, the plain loop) or vectorized. Importing this module does not import torch."""
