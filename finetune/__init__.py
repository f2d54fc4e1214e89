"""SQuAD data -> features -> Trainer -> model dir; evaluation; the Reader used at inference.

Imports neither bot nor retrieval.
"""
