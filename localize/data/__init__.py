"""Datamodules, readers per source format, label alignment and locale text handling.

Importing the package registers the NER annotation-tool exports (``ner_formats``: JSON shapes,
``ner_brat``: brat standoff) with the NER source registry, so whoever reads ``ner_readers.NER`` sees them.
"""
from localize.data import ner_brat, ner_formats  # noqa: F401  (registration)
