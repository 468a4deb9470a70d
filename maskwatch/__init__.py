"""MaskWatch core: settings, Redis keys, message codec, model artifact, vision pipeline, runtimes.

Everything the apps (producer, worker, dashboard, trainer) share lives here, and nothing here
imports an app. See docs/architecture.md.
"""

__version__ = "0.1.0"
