"""mailpipe core: parsing, enrichment and the pipeline, provider-neutral.

Dependency rule (enforced by tests/test_layers.py): ``core`` imports only the standard library and itself.
Providers (``providers/<cloud>``) import ``core`` and their own SDK; handlers compose one provider with core.
"""

__version__ = "0.1.0"
