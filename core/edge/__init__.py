"""The SMTP edge, sans I/O: the session state machine (``session``) and its actions (``actions``), address paths
(``paths``), DATA decoding (``data``), store-before-250 (``ingest``) and the store of each recipient domain
(``tenants``). The listener that drives it is ``mailpipe.providers.smtp``."""
