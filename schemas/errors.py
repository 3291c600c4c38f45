"""Why an event could not be decoded. Every one of these is terminal: the event goes to the dead-letter
stream with `str(error)` as its human-readable reason."""



class EpochstreamError(Exception):
    """Root of all epochstream errors (re-exported by `epochstream.errors`; it lives here, at the bottom of the
    import layers, so the contract needs no other package of ours)."""


class TransientError(EpochstreamError):
    """Retrying later may succeed."""


class TerminalError(EpochstreamError):
    """Retrying will not help; the message says what to change."""


class SchemaError(TerminalError):
    """Root of event-contract errors."""


class MalformedPayload(SchemaError):
    """The bytes are not a JSON object."""


class InvalidEvent(SchemaError):
    """The payload is JSON but breaks the contract; the message names each field and why."""

    def __init__(self, event_type: str, version: int | None, problems: list[tuple[str, str]]):
        self.event_type = event_type
        self.version = version
        self.problems = problems
        where = f"{event_type} v{version}" if version is not None else event_type
        detail = "; ".join(f"{field}: {reason}" for field, reason in problems)
        super().__init__(f"invalid {where} event: {detail}")


class EventIdMismatch(InvalidEvent):
    """The `event_id` does not belong to the event's run (the producer's rule: `<run_id>:<seq>`). Such an entry
    could hide or overwrite another run's event wherever events are de-duplicated, so it is refused whole."""


class IdentityConflict(SchemaError):
    """Another event with different content was already taken under this identity (run, seq): the first one
    stands, this one is dead-lettered (never merged, never silently dropped)."""

    def __init__(self, event_type: str, event_id: str, run_id: str, seq: int, where: str):
        self.event_id, self.run_id, self.seq = event_id, run_id, seq
        super().__init__(f"conflict: another event was already {where} as {event_id!r} (run {run_id!r}, seq {seq}) "
                         f"with different content; this {event_type} event is kept out and the first one stands. "
                         "A producer reusing ids (or a hostile one) sent it: fix the producer, then discard it")


class UnknownEventType(SchemaError):
    def __init__(self, event_type: object, known: list[str]):
        self.event_type = event_type
        super().__init__(f"unknown event type {event_type!r}; this worker knows {', '.join(sorted(known))}")


class UnsupportedVersion(SchemaError):
    """A version newer than this code knows: upgrade the workers, then `epochstream dlq replay`."""

    def __init__(self, event_type: str, version: object, newest: int):
        self.event_type = event_type
        self.version = version
        super().__init__(
            f"{event_type} event version {version!r} is not supported (newest known: {newest}); "
            "upgrade epochstream on the workers, then run `epochstream dlq replay`"
        )


class PayloadTooLarge(SchemaError):
    def __init__(self, size: int, limit: int):
        super().__init__(f"payload of {size} bytes exceeds the {limit}-byte limit for one event")
