"""Continual localization: stage sequences, the accuracy matrix, forgetting and transfer.

``python -m localize.continual sequence=ner_types strategy=sequential|replay|l2sp|adapter_per_stage``
(``localize.continual.sequence``); stage-level hooks (``init_from``, L2-SP) in ``callbacks``.
"""
