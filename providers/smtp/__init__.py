"""SMTP ingress adapter on aiosmtpd (``mailpipe[smtp]``): the edge that stores mail before it answers 250.

``edge.start_edge`` serves one event loop; ``session.EdgeSMTP`` is aiosmtpd's SMTP with a fast, strict DATA
path. Entry points: ``handlers/smtp_edge.py`` (the edge alone), ``handlers/local.py`` (``mailpipe serve``).
"""
