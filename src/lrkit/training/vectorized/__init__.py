"""The vectorized engine: K trials of one model trained in lockstep as one stacked network
(see ``loop``); ``network`` converts standard layers and says why a model cannot be."""
