"""SMTP ingress adapter: the edge that stores mail before it answers 250 (no third-party dependency).

``edge.start_edge`` serves one event loop; ``protocol.SMTPProtocol`` drives the pure session state machine
``mailpipe.core.edge.session.Session`` on an asyncio.Protocol; ``policy.EdgeHandler`` decides recipients and stores.
Entry points: ``handlers/edge.py`` (the edge alone), ``handlers/local.py`` (``mailpipe serve``).
"""
