"""lrkit inside other trainers: ``integrations.transformers`` for Hugging Face's ``Trainer``
(``pip install 'lrkit[hf]'``), ``integrations.lightning`` for Lightning's ``Trainer.fit``
(``pip install 'lrkit[lightning]'``). Each module imports its framework; this package imports
nothing."""
