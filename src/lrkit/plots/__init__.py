"""Figures (matplotlib, imported lazily). Plots read results; results never depend on plots."""
