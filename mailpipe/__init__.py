"""mailpipe: inbound mail in, structured data out, on any cloud.

The wheel installs this one import package. Its subpackages live in the repository's top-level folders, which
the product's layout fixes (pyproject.toml ``[tool.setuptools.package-dir]`` maps them):

- ``mailpipe.core``      -> ``core/``      kernel (errors, ports, model, keys, log, settings, pipeline) and
                                           its concerns ``mime/``, ``enrich/``, ``routing/``, ``edge/``
- ``mailpipe.providers`` -> ``providers/`` adapters per cloud (``aws/``, ``gcp/``, ``azure/``), ``local/``,
                                           the SMTP listener ``smtp/``, the PyYAML loaders ``yaml/``
- ``mailpipe.handlers``  -> ``handlers/``  entry points and the one composition root (``compose``)
- ``mailpipe.enrichers`` -> ``enrichers/`` the built-in enrichers
"""

from __future__ import annotations

from mailpipe.core import RELEASE as __version__

__all__ = ["__version__"]
