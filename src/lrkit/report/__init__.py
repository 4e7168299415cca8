"""The HTML report (an edge: it reads the store and result files, nothing reads it)."""
