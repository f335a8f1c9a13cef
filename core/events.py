"""Provider-neutral helpers over event decoders (``record -> list[Delivery]``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from core.errors import MalformedEvent
from core.ports import Delivery

Decoder = Callable[[Any], list[Delivery]]


def bind_store(store: object, decoder: Decoder) -> Decoder:
    """``decoder`` restricted to one store: a delivery naming another bucket/container is MalformedEvent
    (permanent), and keys are made relative to the store's prefix (``s3://bucket/prefix``); keys outside the
    prefix stay as they are, so the pipeline ignores them. Pure: no I/O."""
    bucket, prefix = getattr(store, "bucket", None), getattr(store, "prefix", "")

    def bound(record: Any) -> list[Delivery]:
        out = []
        for d in decoder(record):
            if bucket is not None and d.ref.bucket != bucket:
                raise MalformedEvent(f"delivery {d.id}: bucket {d.ref.bucket!r} is not this store's")
            if prefix and d.ref.key.startswith(prefix):
                d = replace(d, ref=replace(d.ref, key=d.ref.key[len(prefix) :]))
            out.append(d)
        return out

    return bound
