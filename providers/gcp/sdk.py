"""google-cloud plumbing shared by the GCP adapters: the key guard and error translation.

NotFound -> ObjectNotFound; 429/ResourceExhausted -> Throttled; every other API, retry-deadline,
auth-transport or connection error -> BackendUnavailable, so the platform redelivers and the dead-letter topic
is the backstop (STYLE.md rule 8: anything involving I/O is transient). The SDK is imported only when an error
is translated.
"""

from __future__ import annotations

from mailpipe.core.errors import BackendUnavailable, ObjectNotFound, PipelineError, Throttled


def translate(exc: BaseException, what: str) -> PipelineError | None:
    """The neutral error for an SDK/transport exception raised doing ``what``, or None when it is not one."""
    from google.api_core import exceptions as gexc

    name = exc.__class__.__name__
    if isinstance(exc, gexc.NotFound):
        return ObjectNotFound(what)
    if isinstance(exc, gexc.TooManyRequests | gexc.ResourceExhausted):
        return Throttled(f"{what}: {name}")
    transport = exc.__class__.__module__.startswith(("requests", "urllib3", "google.auth"))
    if transport or isinstance(exc, gexc.GoogleAPIError | ConnectionError | TimeoutError):
        return BackendUnavailable(f"{what}: {name}")
    return None
