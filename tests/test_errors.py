"""core.errors.translated: the one shape of SDK-error translation the adapters share."""

from __future__ import annotations

import pytest

from mailpipe.core.errors import (
    BackendUnavailable,
    MessageTooLarge,
    ObjectNotFound,
    PipelineError,
    Throttled,
    translated,
)


class SdkNotFound(Exception):
    pass


class SdkSlowDown(Exception):
    pass


def translate(exc: BaseException, what: str) -> PipelineError | None:
    if isinstance(exc, SdkNotFound):
        return ObjectNotFound(what)
    if isinstance(exc, SdkSlowDown):
        return Throttled(what)
    return None


def test_a_recognised_sdk_error_becomes_its_neutral_error_chained() -> None:
    with pytest.raises(Throttled, match="s3 get k") as err, translated(translate, "s3 get k"):
        raise SdkSlowDown
    assert isinstance(err.value.__cause__, SdkSlowDown)


def test_unknown_and_neutral_errors_pass_unchanged() -> None:
    with pytest.raises(KeyError), translated(translate, "x"):
        raise KeyError("a bug is not an outage in disguise")
    with pytest.raises(MessageTooLarge), translated(translate, "x"):
        raise MessageTooLarge("3000 bytes")


def test_a_publishers_missing_queue_is_set_up_trouble_not_permanent() -> None:
    with pytest.raises(BackendUnavailable, match="queue send q"), translated(
        translate, "queue send q", missing=BackendUnavailable
    ):
        raise SdkNotFound
    with pytest.raises(ObjectNotFound), translated(translate, "get k"):
        raise SdkNotFound
