"""lrkit inside other trainers: ``integrations.transformers`` for Hugging Face's ``Trainer``
(``pip install 'lrkit[hf]'``). Each module imports its framework; this package imports
nothing."""
