"""The textbook's experiments, built on sweeps: ``textbook`` (the chapter's learning rate x
batch size grids and its claims) and ``batch_size_demo`` (decay the learning rate or grow the
batch, Smith et al. 2018)."""
