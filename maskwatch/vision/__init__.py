"""The vision pipeline: decode, detect faces, crop, classify, annotate.

One piece of code used by the worker, `maskwatch predict`, the offline analysis job and the
evaluation; nothing re-implements it.
"""
