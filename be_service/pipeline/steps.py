"""What a platform step is: it takes a batch of claimed revisions and returns one outcome each.

The step list (platforms/registry.py) orders them; sender.py runs it and the policy turns the
outcomes into each revision's next state. A step never touches the database.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

import msgspec

from be_service.models import DONE, FIRST_STEP, STEP_NAME_MAX

# The step being sent by this task: what a platform call is counted under (metrics).
CURRENT_OPERATION: ContextVar[str] = ContextVar("current_operation", default="other")

# Platform answers kept on attempt rows are cut to this many characters.
RESPONSE_KEEP_CHARS = 1000


class Cause(StrEnum):
    """Whom a failure is about: the ticket (a person may have to look) or the platform
    (transport, 5xx, 429, limits: it clears by itself)."""

    ticket = "ticket"
    platform = "platform"


@dataclass(frozen=True)
class CallFailure:
    """A whole call that did not give per-item answers (transport error, non-2xx, bad body).

    `cause` decides what it costs: a platform-wide failure (the default: transport errors,
    timeouts, 5xx, 429, request limits, a failing login, a garbled answer) waits and never
    spends a ticket's retries; a failure about the ticket (400/404/409/422) does.
    """

    message: str
    retryable: bool
    http_status: int | None = None
    response: str | None = None
    retry_after: float | None = None
    cause: Cause = Cause.platform

    @property
    def may_have_applied(self) -> bool:
        """Whether the platform may have done what was asked although the call failed: no
        answer at all (timeout, reset), a server or gateway error (500, 502, 504: the answer
        may be what was lost), or an unreadable 2xx. A 503 or a 429 is a refusal: nothing
        was done, so a create refused that way is searched for again without waiting."""
        status = self.http_status
        return status is None or status in (500, 502, 504) or 200 <= status < 300


class PlatformError(Exception):
    """Raised inside a step to abort a call with a `CallFailure`."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def truncate(text: str | None, limit: int = RESPONSE_KEEP_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "…"


# A revision's ids on every platform, {platform: {key: value}} (ticket_revision.platform_ids).
PlatformIds = Mapping[str, Mapping[str, Any]]


class Item(msgspec.Struct, frozen=True):
    """A claimed revision as the steps see it: the ticket's fields and what earlier steps got.

    A struct, not a dataclass: the sender derives a new one per revision and step (with its
    new ids and position), ~8 µs each with dataclasses.replace."""

    # Which revision, and how far it has got.
    id: int
    ticket_id: uuid.UUID
    revision: int
    action: str
    step: str  # the step it waits for, DONE when there is none left
    # What the platforms are sent.
    dedup_key: str
    priority: str
    kind: str
    category: str
    title: str
    description: str
    work_order_subject: str
    work_order_description: str
    ids: PlatformIds = msgspec.field(default_factory=dict)
    # The WM's ownership generation it was delivered under (pipeline/fence.py).
    generation: int | None = None

    def platform_id(self, platform: str, key: str) -> Any:
        return (self.ids.get(platform) or {}).get(key)


class Outcome(msgspec.Struct, frozen=True):
    """One try of one step on one revision: becomes an attempt row and the revision's move.

    A struct like Item: a batch makes one per revision and step (2 µs each as a frozen
    dataclass, 0.1 µs as a struct)."""

    revision_id: int
    operation: str  # the step's name
    ok: bool
    at: datetime
    http_status: int | None = None
    response: str | None = None
    error: str | None = None
    # On success: the platform entries it learnt, each whole ({"sfyc": {"id", "number"}}).
    ids: PlatformIds = msgspec.field(default_factory=dict)
    # On failure: whom it is about, may it be tried again, how long the platform asked us to
    # wait, and the least wait before the revision is taken again.
    cause: Cause = Cause.ticket
    retryable: bool = True
    retry_after: float | None = None
    min_delay: float = 0.0


Need = tuple[str, str]  # (platform, key) of an id an earlier step must have written


class Step(ABC):
    """One operation of one platform, sent for a whole batch in as few calls as it can.

    `wants` says from a revision's ids and action alone whether it still needs this step;
    the sender moves each revision to the next step of the list that wants it.
    """

    name: ClassVar[str]  # ticket_revision.step while a revision waits here; attempt operation
    platform: ClassVar[str]  # whose ids it writes under, whose health its failures are about
    needs: ClassVar[tuple[Need, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()  # keys it writes under ids[platform]
    # Positions of later steps whose revisions this step takes first (the search before a
    # create is resent).
    also_takes_from: ClassVar[tuple[str, ...]] = ()
    # Record right after the step's calls instead of at the end of the batch: later steps
    # rely on it being stored (the check).
    record_at_once: ClassVar[bool] = False
    # False for a write that must not be repeated after a crash (a note): its requests go
    # one at a time, each recorded before the next leaves, instead of all at once, so a
    # crash between a call and its record repeats that one request only.
    repeatable: ClassVar[bool] = True
    # A whole-call failure may still have written (a create whose answer was lost): the
    # revision waits BE_AMBIGUOUS_CREATE_DELAY_SECONDS before it is searched for again.
    may_write_unanswered: ClassVar[bool] = False

    @property
    def records_each_call(self) -> bool:
        """Recorded right after its calls, not at the end of the batch."""
        return self.record_at_once or not self.repeatable

    def wants(self, item: Item) -> bool:
        return all(item.platform_id(platform, key) for platform, key in self.needs)

    def takes(self, item: Item) -> bool:
        return (item.step == self.name or item.step in self.also_takes_from) and self.wants(item)

    @abstractmethod
    async def send(self, items: Sequence[Item], *, request_size: int) -> list[Outcome]:
        """One outcome per item, in any order; raise PlatformError when the call as a whole
        failed (the sender turns it into a failed outcome for every item). `items` are one
        request's worth: at most `request_size` (max_tickets_per_request)."""


def now() -> datetime:
    return datetime.now(UTC)


def succeeded(
    step: Step, item: Item, *, response: str | None, ids: PlatformIds | None = None
) -> Outcome:
    return Outcome(
        item.id, step.name, ok=True, at=now(), http_status=200, response=response, ids=ids or {}
    )


def rejected(step: Step, item: Item, *, response: str | None, error: str | None) -> Outcome:
    """One item the platform refused inside a 200 answer (a validation error)."""
    return Outcome(
        item.id, step.name, ok=False, at=now(), http_status=200, response=response, error=error
    )


def with_ids(item: Item, ids: PlatformIds) -> Item:
    """`item` with the platform entries of an outcome, each replacing that platform's whole."""
    return msgspec.structs.replace(item, ids={**item.ids, **ids})


def next_position(steps: Sequence[Step], after: int, item: Item) -> str:
    """The first step after index `after` that `item` still wants, or DONE."""
    return next((s.name for s in steps[after + 1 :] if s.wants(item)), DONE)


def check_step_list(steps: Sequence[Step]) -> None:
    """Refuse a list a revision could not get through: unique names that fit the step column,
    the first one where intake puts new revisions, every need written by an earlier step,
    every position a step also takes from a later step's."""
    names = [s.name for s in steps]
    if not steps or names[0] != FIRST_STEP:
        raise ValueError(f"the step list must start with {FIRST_STEP!r}: {names}")
    if len(set(names)) != len(names) or DONE in names:
        raise ValueError(f"step names must be unique and not {DONE!r}: {names}")
    if any(len(name) > STEP_NAME_MAX for name in names):
        raise ValueError(f"step names have at most {STEP_NAME_MAX} characters: {names}")
    provided: set[Need] = set()
    for index, step in enumerate(steps):
        missing = [need for need in step.needs if need not in provided]
        if missing:
            raise ValueError(f"step {step.name!r} needs {missing} that no earlier step provides")
        if not set(step.also_takes_from) <= set(names[index + 1 :]):
            raise ValueError(f"step {step.name!r} takes from {step.also_takes_from}: not later")
        provided.update((step.platform, key) for key in step.provides)
