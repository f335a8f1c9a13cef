"""azure-storage plumbing shared by the Azure adapters: client construction and error translation.

Credentials: the connection string in ``AZURE_STORAGE_CONNECTION_STRING`` when set (azurite's well-known
devstoreaccount1 string in tests; its AccountName must match the URL's account), otherwise the platform
identity (managed identity, azure-identity's DefaultAzureCredential) on
``https://ACCOUNT.{blob,queue}.core.windows.net``.

ResourceNotFoundError -> ObjectNotFound; 429 or 503 ServerBusy -> Throttled; every other Azure SDK error
(5xx, auth, connection, timeout) -> BackendUnavailable: the platform retries; the poison queue is the
backstop.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from mailpipe.core.errors import BackendUnavailable, ConfigError, ObjectNotFound, PipelineError, Throttled

CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
# The SDK default backs off 15 s, 18 s, 24 s: longer than a function should wait on one call.
CLIENT_OPTIONS = {
    "retry_total": 3, "initial_backoff": 1, "increment_base": 2, "connection_timeout": 10, "read_timeout": 60,
}




def make_client(cls: Any, account: str, service: str, **kwargs: Any) -> Any:
    """An SDK client (``ContainerClient``, ``QueueClient``) for ``account``. Raises ConfigError."""
    # azure-core logs every request and response header at INFO: keep our JSON log lines readable.
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    conn = os.environ.get(CONNECTION_STRING_ENV)
    if conn:
        client = cls.from_connection_string(conn, **kwargs, **CLIENT_OPTIONS)
        if client.account_name != account:
            found = client.account_name
            raise ConfigError(f"{CONNECTION_STRING_ENV} names account {found!r}, not {account!r}")
        return client
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise ConfigError(f"set {CONNECTION_STRING_ENV} or pip install azure-identity") from exc
    url = f"https://{account}.{service}.core.windows.net"
    return cls(url, credential=DefaultAzureCredential(), **kwargs, **CLIENT_OPTIONS)


def translate(exc: BaseException, what: str) -> PipelineError | None:
    """The neutral error for an Azure SDK exception raised doing ``what``, or None when it is not one."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    if isinstance(exc, ResourceNotFoundError):
        return ObjectNotFound(what)
    status, code = getattr(exc, "status_code", None), getattr(exc, "error_code", None)
    if status == 429 or code == "ServerBusy":  # Azure Storage throttles with 503 ServerBusy
        return Throttled(f"{what}: {status} {code}")
    if isinstance(exc, AzureError | ConnectionError | TimeoutError):
        return BackendUnavailable(f"{what}: {exc.__class__.__name__} {status or ''}".rstrip())
    return None
