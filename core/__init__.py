"""mailpipe core, provider-neutral and stdlib-only.

The kernel sits at this package's root: ``errors``, ``ports`` (Protocols and the event contract), ``model``,
``keys``, ``domains``, ``quarantine``, ``log``, ``metrics``, ``settings`` and ``pipeline``. Each concern has a
folder of its own and imports only the kernel and itself (tests/test_layers.py):

- ``mime/``    bounded MIME parsing (``parser.parse``) and its helpers
- ``enrich/``  the enrichment contract, registry, view of the message, derived files, the runner
- ``routing/`` per-customer rules, their loader, the plan, dispatch to queues and signed webhooks
- ``edge/``    the sans-I/O SMTP session, DATA decoding, store-before-250 ingest, per-domain stores

``pipeline`` joins the concerns: a stored ``.eml`` -> parse -> enrich -> store -> route.
"""

RELEASE = "0.1.0"  # the code's version (parser, built-in enrichers): mailpipe.__version__, parsed JSON's processed_by
