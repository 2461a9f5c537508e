"""Email dispatch: one ledger row per (run, subscriber), sent in id-range batches.

The stages, each safe to run twice:

1. `create_deliveries` walks confirmed subscribers by id, a page at a time (never the
   whole list in memory), and inserts a `queued` delivery for each one who wants this
   edition, with its variant (the sections it receives). The unique (run, subscriber)
   constraint and INSERT ... ON CONFLICT DO NOTHING make a second call add nothing. It
   returns the batches: subscriber-id ranges of at most `batch_size` deliveries.
2. `send_batch` CLAIMS the sendable rows of one range in a single UPDATE (status
   `sending`, a fresh holder id, a lease: see leases.py), then sends only what it
   claimed, renewing the lease while it works. Two workers given the same range never
   both send a row: the database lets one UPDATE win each row. A lease not renewed for
   `[delivery] lease_seconds` belongs to a dead sender and its rows may be claimed again
   (the one case that can duplicate a message: the death fell between the server's
   "250" and our ledger write, at most one message per open connection). Asked to stop
   (SIGTERM), a batch finishes the messages in flight, records them and releases the
   rows it has not started.
3. Each claimed row is rendered through its variant (rendered and CSS-inlined once per
   process and variant, then filled per recipient cheaply), sent through the mail
   channel over a few connections in parallel, and its outcome written back as soon as
    the server has answered; a connection sends its next message's body only once the
    last one it got accepted is in the ledger, so a crash leaves at most one message per
    connection sent but unrecorded (the one whose reply was in flight or being written).
    Outcomes: sent; deferred with the next attempt after a backoff with jitter, until
    the deadline; failed with the server's reply. A 5.1.x refusal (the address does not
    exist) also marks the subscriber bounced, so later runs skip them. A delivery the
    channel skipped (it stopped after the server refused connection after connection)
    is deferred without being charged the attempt its claim counted.
4. `retry_deferred` re-sends deferred rows whose time has come, and rows a dead
    sender's expired lease left claimed.

Run status belongs to the engine (engine.mark_sending / finish_if_done); this module
only reads the run and writes deliveries and bounced subscribers.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Iterable, Iterator, Sequence

from sqlalchemy import and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from distributor import metrics
from distributor.channels.contracts import Envelope, MailChannel, SendResult
from distributor.channels.mail import mail_channel
from distributor.channels.smtp import is_bad_address
from distributor.delivery import leases
from distributor.editions import Edition
from distributor.runs import RunInfo, delivery_counts, get_run, note_progress
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import DeliveryRow, SubscriberEventRow, SubscriberRow, utcnow
from distributor.text import shorten

log = logging.getLogger("distributor.delivery.email")

# --- limits --------------------------------------------------------------------------
# Operator-tunable ones come from [email] (settings.file.email); these are the defaults of
# functions called without settings, and the fixed rules that are not worth a key.

# Defaults of [email] batch_size / connections / messages_per_connection.
BATCH_SIZE = 1000
CONNECTIONS = 4
MESSAGES_PER_CONNECTION = 250
# Fewest messages worth opening one more parallel connection for: a small batch goes out
# over one connection, so a handful of messages costs one connection, not four.
MIN_MESSAGES_PER_CONNECTION = 50
# The defaults of [email] retry_first_seconds / retry_max_seconds (the settings pass
# theirs): a deferred delivery waits RETRY_FIRST, then twice as long after each further
# failure, at most RETRY_MAX.
RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=2)
# Each wait is stretched or shrunk by up to this fraction, so the deliveries a busy
# server refused together do not all come back at the same second.
RETRY_JITTER = 0.2
# The default of [email] delivery_deadline_hours, and the deadline assumed for a row
# written without one.
DELIVERY_DEADLINE = timedelta(hours=12)
# Seconds the main thread waits for the sending threads at a time: how soon a stop
# signal (handled in the main thread only) takes effect.
WAKE = 0.2
# Longest server reply kept in the ledger.
REPLY_MAX_CHARS = 1000


def _kept(reply: str) -> str:
    """A reply as the ledger keeps it: at most REPLY_MAX_CHARS, cut between characters."""
    return shorten(reply, REPLY_MAX_CHARS, prefer_words=False)


# The variant key of a subscriber who receives every section.
ALL_SECTIONS = "all"

SENDABLE = ("queued", "deferred", "sending")


# --- reports -------------------------------------------------------------------------


class _Counts(Mapping):
    """A dataclass that also reads as a dict of its fields (for task results and JSON)."""

    def __getitem__(self, key: str) -> int:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> list[str]:
        return [f.name for f in fields(self)]  # type: ignore[arg-type]


@dataclass
class BatchReport(_Counts):
    """What one `send_batch` (or one `retry_deferred` pass) did."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    suppressed: int = 0
    bounced: int = 0  # subscribers marked bounced by this batch
    released: int = 0  # claimed but not started when asked to stop: back to queued (or deferred)

    def add(self, other: "BatchReport") -> None:
        for name in self:
            setattr(self, name, self[name] + other[name])


@dataclass
class DispatchReport(_Counts):
    """A run after `dispatch_run`: the ledger's counts by status, and what this call did."""

    queued: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    suppressed: int = 0
    sending: int = 0  # claimed by a worker right now (another process, or a crashed one)
    created: int = 0  # deliveries this call added to the ledger
    batches: int = 0


# --- pure rules ----------------------------------------------------------------------


def wants_edition(editions: Sequence[str] | None, edition: str, defaults: Iterable[str]) -> bool:
    """Does a subscriber with these edition preferences get `edition`? None = the defaults."""
    return edition in (editions if editions is not None else set(defaults))


def variant_key(chosen: Iterable[str] | None, configured: Sequence[str]) -> str:
    """The variant a subscriber's sections make: sorted slugs joined by "+", or "all"
    (the same spelling as RenderedVariant.key).

    Slugs no longer configured are ignored; choosing none, or every one, is "all" (the
    default), so those readers share one rendering.
    """
    known = set(configured)
    picked = sorted({slug for slug in chosen or () if slug in known})
    if not picked or len(picked) == len(known):
        return ALL_SECTIONS
    return "+".join(picked)


def variant_sections(key: str, configured: Sequence[str]) -> tuple[str, ...]:
    """The sections of a variant key, in configured order (every section for "all")."""
    if key in ("", ALL_SECTIONS):
        return tuple(configured)
    wanted = set(key.split("+"))
    return tuple(slug for slug in configured if slug in wanted) or tuple(configured)


def backoff(attempts: int, salt: str = "", *, first: timedelta = RETRY_FIRST, most: timedelta = RETRY_MAX) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt: `first` doubling per
    attempt up to `most`, times a jitter in [1 - RETRY_JITTER, 1 + RETRY_JITTER).

    The jitter comes from a hash of (salt, attempts), not a random generator, so the
    same delivery always gets the same schedule (reproducible, testable) while different
    deliveries spread out.
    """
    exponent = min(max(attempts - 1, 0), 30)
    base = min(first * (2**exponent), most)
    digest = hashlib.sha256(f"{salt}:{attempts}".encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64
    return base * (1 + RETRY_JITTER * (2 * unit - 1))


@dataclass(frozen=True)
class Decision:
    """What the ledger records for one send result."""

    status: str  # sent | deferred | failed
    reply: str
    next_attempt_at: datetime | None = None
    bounce: bool = False  # the subscriber's address is bad: mark them bounced
    # False when nothing was tried for this delivery (the channel skipped it): the
    # attempt its claim counted is given back.
    charged: bool = True


def decide(
    result: SendResult,
    *,
    attempts: int,
    deadline: datetime,
    now: datetime,
    salt: str = "",
    first: timedelta = RETRY_FIRST,
    most: timedelta = RETRY_MAX,
) -> Decision:
    """The caller's half of Mailman's split: the channel classified, this decides.

    sent -> sent; permanent -> failed (a bounce when the reply says 5.1.x); temporary ->
    deferred until the next attempt, or failed once the deadline has come. A skipped
    result (never tried) is deferred uncharged: `attempts` counts the claim's attempt,
    which is given back, and the wait is the one the last real attempt earned.
    """
    reply = _kept(result.reply)
    if result.outcome == "sent":
        return Decision("sent", reply)
    if result.outcome == "permanent":
        return Decision("failed", reply, bounce=is_bad_address(result))
    if now >= deadline:
        return Decision("failed", _kept(f"deadline passed, last reply: {reply}"), charged=not result.skipped)
    if result.skipped:
        wait = backoff(max(attempts - 1, 1), salt, first=first, most=most)
        return Decision("deferred", reply, next_attempt_at=min(now + wait, deadline), charged=False)
    return Decision("deferred", reply, next_attempt_at=min(now + backoff(attempts, salt, first=first, most=most), deadline))


def split_parts(
    count: int, *, connections: int = CONNECTIONS, per_connection: int = MESSAGES_PER_CONNECTION
) -> list[tuple[int, int]]:
    """[start, end) slices of `count` messages, one per connection: at most
    `per_connection` each, no more parallel parts than the count is worth."""
    if count <= 0:
        return []
    parts = max(-(-count // per_connection), min(connections, count // MIN_MESSAGES_PER_CONNECTION), 1)
    size, extra = divmod(count, parts)
    slices, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        slices.append((start, end))
        start = end
    return slices


# --- stage 1: deliveries ---------------------------------------------------------------

_D = DeliveryRow.__table__
_S = SubscriberRow.__table__


def _insert_ignoring_duplicates(store: Store):  # noqa: ANN202 - a dialect insert
    insert = pg_insert if store.dialect == "postgresql" else sqlite_insert
    return insert(_D).on_conflict_do_nothing(index_elements=["run_id", "subscriber_id"])


def _in_run_zone(settings: Settings, run: RunInfo):  # noqa: ANN202 - a SQL condition
    """Local-time runs are per subscriber zone; a subscriber with no zone is in the site's."""
    if not run.timezone:
        return True
    if run.timezone == settings.site.timezone:
        return or_(_S.c.timezone == run.timezone, _S.c.timezone == "", _S.c.timezone.is_(None))
    return _S.c.timezone == run.timezone


def create_deliveries(
    settings: Settings,
    store: Store,
    run_id: int,
    *,
    batch_size: int | None = None,
    now: datetime | None = None,
) -> list[tuple[int, int]]:
    """Queue one delivery per confirmed subscriber who wants this run's edition; return
    the run's batches as (first, last) subscriber-id ranges. Idempotent."""
    batch_size = batch_size or settings.file.email.batch_size
    now = now or utcnow()
    run = get_run(store, run_id)
    configured = [s.slug for s in settings.sections]
    defaults = {name for name, config in settings.editions.items() if config.default}
    deadline = now + timedelta(hours=settings.file.email.delivery_deadline_hours)
    insert = _insert_ignoring_duplicates(store)
    before = _count(store, run_id)
    after_id = 0
    while True:
        with store.session() as session:
            page = session.execute(
                select(_S.c.id, _S.c.sections, _S.c.editions)
                .where(_S.c.status == "confirmed", _S.c.id > after_id, _in_run_zone(settings, run))
                .order_by(_S.c.id)
                .limit(batch_size)
            ).all()
            if not page:
                break
            rows = [
                {
                    "run_id": run_id,
                    "subscriber_id": subscriber_id,
                    "status": "queued",
                    "variant": variant_key(sections, configured),
                    "reply": "",
                    "attempts": 0,
                    "deadline": deadline,
                    "created_at": now,
                    "updated_at": now,
                }
                for subscriber_id, sections, editions in page
                if wants_edition(editions, run.edition, defaults)
            ]
            if rows:
                session.execute(insert, rows)
        after_id = page[-1][0]
    created = _count(store, run_id) - before
    ranges = list(batch_ranges(store, run_id, batch_size))
    log.info("deliveries queued", extra={"run": run_id, "edition": run.edition, "new_deliveries": created, "batches": len(ranges)})
    return ranges


def _count(store: Store, run_id: int) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(_D).where(_D.c.run_id == run_id)) or 0


def _sendable(now: datetime, *, include_queued: bool = True):  # noqa: ANN202 - a SQL condition
    """Rows a sender may claim: queued, deferred and due at `now`, or held by a dead
    sender (an expired lease, by the wall clock)."""
    due = [
        and_(_D.c.status == "deferred", _D.c.next_attempt_at <= now),
        leases.expired(_D),
    ]
    if include_queued:
        due.insert(0, _D.c.status == "queued")
    return or_(*due)


def batch_ranges(
    store: Store,
    run_id: int,
    batch_size: int = BATCH_SIZE,
    *,
    now: datetime | None = None,
    retries_only: bool = False,
) -> Iterator[tuple[int, int]]:
    """(first, last) subscriber-id ranges of at most `batch_size` deliveries of a run.

    With `now`, only rows sendable at that time count (with `retries_only`, only due
    deferred rows and expired leases). Reads one page of ids at a time.
    """
    after_id = 0
    while True:
        query = select(_D.c.subscriber_id).where(_D.c.run_id == run_id, _D.c.subscriber_id > after_id)
        if now is not None:
            query = query.where(_sendable(now, include_queued=not retries_only))
        with store.session() as session:
            ids = session.scalars(query.order_by(_D.c.subscriber_id).limit(batch_size)).all()
        if not ids:
            return
        yield ids[0], ids[-1]
        after_id = ids[-1]


# --- rendering caches ------------------------------------------------------------------


class _Lru:
    """A small thread-safe LRU map: rendered variants and issues, per process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):  # noqa: ANN001, ANN201
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key, value):  # noqa: ANN001, ANN201
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# A run has as many variants as its readers have distinct section choices: a dozen is
# typical, 255 the most 8 sections allow. A rendered variant holds its HTML, text and
# encoded message, ~300 KB for a 40-article issue, so 256 entries bound the cache near
# 75 MB in the worst case (a few MB in the usual one).
_VARIANTS = _Lru(256)
_ISSUES = _Lru(16)


def clear_caches() -> None:
    """Forget rendered variants and issues (tests; a long-lived worker never needs to)."""
    _VARIANTS.clear()
    _ISSUES.clear()


def _run_key(store: Store, run: RunInfo) -> tuple:
    # The store URL too: two databases (tests, a staging copy) can both have run 1.
    return (store.url, run.id, run.edition, run.slot, run.timezone, run.attempt)


def run_issue(settings: Settings, store: Store, run: RunInfo) -> Edition:
    """The issue a run was prepared with, read once per process."""
    key = _run_key(store, run)
    issue = _ISSUES.get(key)
    if issue is None:
        from distributor.engine import issue_of

        issue = _ISSUES.put(key, issue_of(settings, store, run))
    return issue


def _rendered(settings: Settings, store: Store, run: RunInfo, issue: Edition, variant: str, now: datetime):  # noqa: ANN202
    """The variant rendered and CSS-inlined once per process (the expensive step)."""
    from distributor.render.email import render_variant

    key = (*_run_key(store, run), variant)
    found = _VARIANTS.get(key)
    if found is None:
        sections = None if variant == ALL_SECTIONS else variant_sections(variant, [s.slug for s in settings.sections])
        # Rendered outside the lock: two threads may race to render the same variant
        # once each, which costs a render but never blocks other variants.
        found = _VARIANTS.put(key, render_variant(settings, issue, sections=sections, run_id=run.id, now=now))
    return found


# --- stage 2: one batch ----------------------------------------------------------------


@dataclass
class _Job:
    """A claimed delivery, and what is needed to build and record its message."""

    delivery_id: int
    subscriber_id: int
    variant: str
    attempts: int
    deadline: datetime
    email: str
    name: str
    subscriber_status: str
    last_reply: str
    text_only: bool = False  # the reader chose the text format
    run_id: int = 0
    rendered: object = None
    result: Decision | None = field(default=None)
    started: bool = False  # handed to the channel: it may have reached the server
    # Set once the ledger write of `result` has been tried (see _Recorder).
    written: threading.Event = field(default_factory=threading.Event)


def _variant_is_empty(known: dict[str, bool], issue: Edition, variant: str, configured: Sequence[str]) -> bool:
    if variant not in known:
        known[variant] = issue.for_sections(variant_sections(variant, configured)).is_empty
    return known[variant]


def _claim(store: Store, run_id: int, first_id: int, last_id: int, holder: str, now: datetime, lease: timedelta) -> int:
    """Lease this range's sendable rows to `holder` in ONE statement; returns how many.

    A conditional UPDATE: on PostgreSQL a row another transaction is claiming is
    re-checked after its lock is released (READ COMMITTED), so of two claimants one
    wins each row; on SQLite writers are serialised.
    """
    with store.session() as session:
        result = session.execute(
            update(_D)
            .where(_D.c.run_id == run_id, _D.c.subscriber_id.between(first_id, last_id), _sendable(now))
            .values(**leases.claim_values(holder, lease), updated_at=now, attempts=_D.c.attempts + 1)
        )
        return result.rowcount or 0


def _claimed(store: Store, run_id: int, first_id: int, last_id: int, token: str, now: datetime) -> list[_Job]:
    with store.session() as session:
        rows = session.execute(
            select(
                _D.c.id, _D.c.subscriber_id, _D.c.variant, _D.c.attempts, _D.c.deadline, _D.c.created_at,
                _D.c.reply, _S.c.email, _S.c.name, _S.c.status, _S.c.format,
            )
            .join(_S, _S.c.id == _D.c.subscriber_id)
            .where(
                _D.c.run_id == run_id,
                _D.c.subscriber_id.between(first_id, last_id),
                _D.c.claim == token,
                _D.c.status == "sending",
            )
            .order_by(_D.c.variant, _D.c.subscriber_id)
        ).all()
    return [
        _Job(
            delivery_id=r.id,
            subscriber_id=r.subscriber_id,
            variant=r.variant or ALL_SECTIONS,
            attempts=r.attempts,
            deadline=r.deadline or (r.created_at or now) + DELIVERY_DEADLINE,
            email=r.email,
            name=r.name or "",
            subscriber_status=r.status,
            last_reply=r.reply or "",
            text_only=r.format == "text",
            run_id=run_id,
        )
        for r in rows
    ]


# The ledger write of decided jobs, built once: it runs about once per message sent, and
# building the statement cost three times what executing it does.
_RECORD = (
    update(_D)
    .where(_D.c.id == bindparam("b_id"), _D.c.claim == bindparam("b_claim"))
    .values(
        status=bindparam("b_status"),
        reply=bindparam("b_reply"),
        next_attempt_at=bindparam("b_next", type_=_D.c.next_attempt_at.type),
        attempts=_D.c.attempts - bindparam("b_refund"),
        claim=None,
        lease_expires_at=None,
        updated_at=bindparam("b_now", type_=_D.c.updated_at.type),
    )
)


def _record(
    store: Store, token: str, now: datetime, jobs: Sequence[_Job], report: BatchReport, *, connection: Connection | None = None
) -> None:
    """Write decided jobs back in one transaction: one executemany UPDATE, plus bounces.

    The holder id guards each row: if our lease lapsed and the row was taken over, the
    new holder's record is not overwritten. An uncharged decision gives back the attempt
    the claim counted. With `connection` (the recorder's own, held for a batch) the
    write skips a session and a pool checkout: it runs once per message.
    """
    decided = [j for j in jobs if j.result is not None]
    if not decided:
        return
    bounced = sorted({j.subscriber_id for j in decided if j.result.bounce})

    def write(session: Session | Connection) -> None:
        session.execute(
            _RECORD,
            [
                {
                    "b_id": j.delivery_id,
                    "b_claim": token,
                    "b_now": now,
                    "b_status": j.result.status,
                    "b_reply": j.result.reply,
                    "b_next": j.result.next_attempt_at,
                    "b_refund": 0 if j.result.charged else 1,
                }
                for j in decided
            ],
        )
        if bounced:
            hit = list(session.execute(select(_S.c.id).where(_S.c.id.in_(bounced), _S.c.status == "confirmed")).scalars())
            if hit:
                session.execute(
                    update(_S).where(_S.c.id.in_(hit), _S.c.status == "confirmed").values(status="bounced", status_changed_at=now)
                )
                # The evidence, as inbound bounces keep theirs (distributor.inbound.events).
                by_subscriber = {j.subscriber_id: j for j in decided if j.result.bounce}
                session.execute(
                    insert(SubscriberEventRow.__table__),
                    [
                        {
                            "subscriber_id": sid, "at": now, "kind": "bounced", "source": "send",
                            "run_id": by_subscriber[sid].run_id or None, "delivery_id": by_subscriber[sid].delivery_id,
                            "detail": {"reply": by_subscriber[sid].result.reply, "when": "refused while sending"},
                        }
                        for sid in hit
                    ],
                )
            report.bounced += len(hit)

    if connection is None:
        with store.session() as session:
            write(session)
    else:
        try:
            write(connection)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
    for job in decided:
        setattr(report, job.result.status, getattr(report, job.result.status) + 1)
        metrics.count(metrics.DELIVERIES, channel="email", status=job.result.status)
    note_progress(store, {j.run_id for j in decided})


def send_batch(
    settings: Settings,
    store: Store,
    run_id: int,
    first_id: int,
    last_id: int,
    *,
    now: datetime | None = None,
    channel: MailChannel | None = None,
    wait_for_leases: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchReport:
    """Send the sendable deliveries of subscribers first_id..last_id of a run, once.

    Claims the rows first (a lease, renewed while the batch runs) and sends only what it
    claimed, so the same batch run twice, or by two workers at once, sends each message
    once. Asked to stop (leases.request_stop), it finishes the messages in flight and
    releases the rows it has not started (`report.released`).

    With `wait_for_leases` (a batch task, perhaps redelivered because the process that
    ran it died), rows of the range that another holder still leases are waited for
    once, at most one lease: a dead holder's are then taken over and sent here; a live
    holder has renewed meanwhile and keeps them.
    """
    report = _send_batch_once(settings, store, run_id, first_id, last_id, now=now, channel=channel)
    if not wait_for_leases or leases.stop_requested():
        return report
    expiry = _earliest_live_lease(store, run_id, first_id, last_id)
    if expiry is None:
        return report
    length = leases.lease_length(settings)
    sleep(min(max((expiry - utcnow()).total_seconds() + 0.1, 0.0), length.total_seconds() + 0.1))
    report.add(_send_batch_once(settings, store, run_id, first_id, last_id, now=now, channel=channel))
    return report


def _send_batch_once(
    settings: Settings,
    store: Store,
    run_id: int,
    first_id: int,
    last_id: int,
    *,
    now: datetime | None,
    channel: MailChannel | None,
) -> BatchReport:
    now = now or utcnow()
    report = BatchReport()
    if leases.stop_requested():
        return report
    token = leases.holder_id()
    length = leases.lease_length(settings)
    if not _claim(store, run_id, first_id, last_id, token, now, length):
        return report
    with leases.Lease(store, _D, token, length) as lease:
        _send_claimed(settings, store, run_id, first_id, last_id, token, now, lease, channel, report)
    log.info(
        "email batch done",
        extra={"run": run_id, "first": first_id, "last": last_id, **{k: v for k, v in report.items() if v}},
    )
    return report


def _send_claimed(
    settings: Settings,
    store: Store,
    run_id: int,
    first_id: int,
    last_id: int,
    token: str,
    now: datetime,
    lease: leases.Lease,
    channel: MailChannel | None,
    report: BatchReport,
) -> None:
    jobs = _claimed(store, run_id, first_id, last_id, token, now)
    report.claimed = len(jobs)
    run = get_run(store, run_id)
    issue = run_issue(settings, store, run)
    configured = [s.slug for s in settings.sections]

    sendable: list[_Job] = []
    # Whether a variant has articles is a property of the variant, not of the reader:
    # decided once per variant key in the batch, not once per delivery.
    empty: dict[str, bool] = {}
    for job in jobs:
        if job.subscriber_status != "confirmed":
            # Unsubscribed, bounced or complained since the delivery was queued.
            job.result = Decision("suppressed", f"not sent: subscriber is {job.subscriber_status}")
        elif now > job.deadline:
            # Strictly after: the last retry is scheduled AT the deadline and still goes.
            last = f"; last reply: {job.last_reply}" if job.last_reply else ""
            job.result = Decision("failed", _kept(f"not sent: deadline passed{last}"))
        elif _variant_is_empty(empty, issue, job.variant, configured):
            job.result = Decision("suppressed", "not sent: no articles in the subscriber's sections")
        else:
            job.rendered = _rendered(settings, store, run, issue, job.variant, now)
            sendable.append(job)
    _record(store, token, now, [j for j in jobs if j.result is not None], report)

    if sendable:
        _send(settings, store, run, token, now, sendable, channel or mail_channel(settings), report, lease)
        # Asked to stop, or our lease in doubt: what never reached the channel goes back.
        unstarted = [j.delivery_id for j in sendable if not j.started and j.result is None]
        if unstarted:
            # Back to what they were: queued, or deferred and due (the retry pass's rows,
            # which it alone looks for).
            was = case((_D.c.next_attempt_at.is_(None), "queued"), else_="deferred")
            report.released = leases.release(
                store, _D, token, unstarted, status=was, attempts=_D.c.attempts - 1, updated_at=utcnow()
            )
            log.warning("email batch stopped early; rows released", extra={"run": run_id, "released": report.released})


class _Recorder:
    """Writes decided jobs to the ledger as soon as they are decided.

    A message the server accepted but the ledger does not yet say was sent is what a
    crash turns into a duplicate (the lease expires and the row is sent again). So
    the channel, having handed over a sent job, waits for its write (`wait_written`)
    before it sends the next message's body. The waiting sender writes it itself,
    together with every job handed in meanwhile (the connections working in parallel
    hand theirs in while each builds its next message), so they share one write (group
    commit) and no thread switch stands between a connection and its next message; a
    sender that finds another one writing waits for that write and then writes what is
    left. Jobs nobody waits for (refusals, deferrals) are written by a background
    thread within LINGER.
    """

    # Longest a decided job waits to be written when no connection needs it sooner.
    LINGER = 0.02
    # Most jobs in one write: bounds a statement's size.
    MOST = 500

    def __init__(self, store: Store, token: str, now: datetime, report: BatchReport) -> None:
        self.store, self.token, self.now, self.report = store, token, now, report
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._unwritten: list[_Job] = []  # jobs whose write failed; tried again at close
        self._writer = threading.Lock()  # one write at a time, by whoever needs it
        self._connection: Connection | None = None  # used under _writer only
        self._handed_in = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._linger, name="ledger", daemon=True)
        self._thread.start()

    def put(self, job: _Job) -> None:
        self._queue.put(job)
        self._handed_in.set()

    def wait_written(self, job: _Job) -> None:
        """Return once `job` (already put) has had its write, writing it if need be."""
        if job.written.is_set():
            return
        with self._writer:
            if not job.written.is_set():
                self._write_waiting()

    def close(self) -> None:
        """Write what is left; raise if some results could not be written."""
        self._stopping = True
        self._handed_in.set()
        self._thread.join()
        with self._writer:
            self._write_waiting()
            if self._connection is not None:
                self._connection.close()
                self._connection = None
        if self._unwritten:
            # One more try from the caller's thread; a failure now propagates (the task
            # is retried, and the rows stay claimed until their lease expires).
            _record(self.store, self.token, self.now, self._unwritten, self.report)

    def _linger(self) -> None:
        while not self._stopping:
            self._handed_in.wait()
            if self._stopping:
                break
            time.sleep(self.LINGER)
            with self._writer:
                # Cleared before the drain: a job handed in after it sets it again.
                self._handed_in.clear()
                self._write_waiting()

    def _write_waiting(self) -> None:
        """Write every job handed in so far (call with _writer held)."""
        while True:
            group: list[_Job] = []
            while len(group) < self.MOST:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not group:
                return
            try:
                if self._connection is None:
                    self._connection = self.store.engine.connect()
                _record(self.store, self.token, self.now, group, self.report, connection=self._connection)
            except Exception:  # noqa: BLE001 - retried once more in close()
                log.exception("could not record email results; will try again", extra={"jobs": len(group)})
                self._unwritten.extend(group)
                if self._connection is not None:  # it may be broken: the next write opens another
                    self._connection.close()
                    self._connection = None
            finally:
                # Even after a failed write: a sender must not wait forever on a
                # database that is down (the results are tried again at close).
                for job in group:
                    job.written.set()
            if len(group) < self.MOST:
                return


def _send(
    settings: Settings,
    store: Store,
    run: RunInfo,
    token: str,
    now: datetime,
    jobs: list[_Job],
    channel: MailChannel,
    report: BatchReport,
    lease: leases.Lease,
) -> None:
    """Send over up to CONNECTIONS connections at once; record each result as it comes.

    No message is started once a stop is requested or the lease is in doubt; those jobs
    are left without a result (started False) for the caller to release.
    """
    from distributor.render.email import Recipient, envelope_sender
    from distributor.subscribers import preferences_url, unsubscribe_url

    by_ref = {f"{run.id}-{j.subscriber_id}": j for j in jobs}
    first = timedelta(seconds=settings.file.email.retry_first_seconds)
    most = timedelta(seconds=settings.file.email.retry_max_seconds)
    recorder = _Recorder(store, token, now, report)

    def settle(job: _Job, result: SendResult) -> None:
        if not result.skipped:
            metrics.count(metrics.SMTP_REPLIES, reply_class=metrics.reply_class(result.code))
        job.result = decide(result, attempts=job.attempts, deadline=job.deadline, now=now, salt=str(job.delivery_id), first=first, most=most)
        recorder.put(job)

    def envelopes(part: Sequence[_Job]) -> Iterator[Envelope]:
        # Built one at a time inside the sending thread, so a part holds one message.
        for job in part:
            if leases.stop_requested() or not lease.held():
                return
            try:
                recipient = Recipient(
                    email=job.email,
                    name=job.name,
                    unsubscribe_url=unsubscribe_url(settings, job.subscriber_id, job.email),
                    preferences_url=preferences_url(settings, job.subscriber_id, job.email),
                    # message_id left empty: the renderer derives it from the run and the
                    # address, so a retried message keeps its Message-ID.
                    delivery_id=job.delivery_id,
                )
                data = job.rendered.message(recipient, text_only=job.text_only)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - one bad address must not stop the batch
                log.exception("could not build a message", extra={"run": run.id, "subscriber": job.subscriber_id})
                job.result = Decision("failed", _kept(f"not sent: could not build the message: {type(exc).__name__}: {exc}"))
                recorder.put(job)
                continue
            job.started = True
            # VERP: with email.bounce_domain set, the return path names this delivery.
            yield Envelope(sender=envelope_sender(settings, job.delivery_id), recipient=job.email, data=data, ref=f"{run.id}-{job.subscriber_id}")

    def on_result(result: SendResult):  # noqa: ANN202 - a waiter or None
        job = by_ref.get(result.ref)
        if job is not None and job.result is None:
            settle(job, result)
            if job.result.status == "sent":
                # The channel sends no further message's body on this connection until
                # this one is in the ledger: what a crash can repeat is one message.
                return lambda: recorder.wait_written(job)
        return None

    def send_part(part: Sequence[_Job]) -> None:
        try:
            results = channel.send(envelopes(part), on_result=on_result)
        except Exception as exc:  # noqa: BLE001 - a channel bug: whatever went out is unknown
            log.exception("mail channel failed", extra={"run": run.id})
            results = [
                SendResult(f"{run.id}-{j.subscriber_id}", j.email, "temporary", None, f"channel error: {type(exc).__name__}")
                for j in part
                if j.result is None and j.started
            ]
        for result in results:  # results the channel returned without calling back
            on_result(result)
        for job in part:
            if job.result is None and job.started:  # the channel returned no result for it
                settle(job, SendResult(f"{run.id}-{job.subscriber_id}", job.email, "temporary", None, "no result from the mail channel"))

    cfg = settings.file.email
    parts = [
        jobs[start:end]
        for start, end in split_parts(len(jobs), connections=cfg.connections, per_connection=cfg.messages_per_connection)
    ]
    try:
        with ThreadPoolExecutor(max_workers=min(cfg.connections, len(parts)), thread_name_prefix="smtp") as pool:
            pending = {pool.submit(send_part, part) for part in parts}
            while pending:
                # Wake every WAKE seconds: a signal's Python handler (SIGTERM asking the
                # senders to stop) runs only in the main thread, and only between waits.
                done, pending = wait(pending, timeout=WAKE, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
    finally:
        recorder.close()


# --- stage 3: the whole run, and retries -----------------------------------------------


def dispatch_run(
    settings: Settings,
    store: Store,
    run_id: int,
    now: datetime | None = None,
    *,
    batch_size: int | None = None,
    channel: MailChannel | None = None,
    take_over: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> DispatchReport:
    """Queue and send a prepared run's email here, batch after batch (the one-process
    mode and `distributor send`; with Celery each batch is its own task).

    With `take_over` (a resumed `send`), it then waits for rows other senders hold:
    each is either settled by its live holder or, once its lease expires (the holder
    died), claimed and sent here. Stops early when a stop is requested.
    """
    batch_size = batch_size or settings.file.email.batch_size
    before = _count(store, run_id)
    ranges = create_deliveries(settings, store, run_id, batch_size=batch_size, now=now)
    created = _count(store, run_id) - before
    channel = channel or mail_channel(settings)
    for first_id, last_id in ranges:
        if leases.stop_requested():
            break
        # Without a fixed `now`, each batch stamps its own time.
        send_batch(settings, store, run_id, first_id, last_id, now=now or utcnow(), channel=channel)
    while take_over and not leases.stop_requested():
        expiry = _earliest_live_lease(store, run_id)
        if expiry is None:
            break
        # Until the earliest lease could have lapsed, checking at least every heartbeat.
        until_lapse = (expiry - utcnow()).total_seconds() + 0.1
        sleep(min(max(until_lapse, 0.1), leases.lease_length(settings).total_seconds() / leases.HEARTBEATS))
        for first_id, last_id in batch_ranges(store, run_id, batch_size, now=now or utcnow(), retries_only=True):
            send_batch(settings, store, run_id, first_id, last_id, now=now or utcnow(), channel=channel)
    counts = delivery_counts(store, run_id)
    return DispatchReport(
        **{k: counts.get(k, 0) for k in ("queued", "sent", "deferred", "failed", "suppressed", "sending")},
        created=created,
        batches=len(ranges),
    )


def _earliest_live_lease(store: Store, run_id: int, first_id: int | None = None, last_id: int | None = None) -> datetime | None:
    """When the first lease on this run's rows (or one range of them) ends (None: no row is held)."""
    where = [_D.c.run_id == run_id, _D.c.status == "sending"]
    if first_id is not None and last_id is not None:
        where.append(_D.c.subscriber_id.between(first_id, last_id))
    with store.session() as session:
        return session.scalar(select(func.min(_D.c.lease_expires_at)).where(*where))


def retry_deferred(
    settings: Settings,
    store: Store,
    now: datetime | None = None,
    *,
    batch_size: int | None = None,
    channel: MailChannel | None = None,
) -> BatchReport:
    """Re-send deferred deliveries whose next attempt has come (and rows a dead sender
    left claimed, once its lease expired), in batches, for every run that has some."""
    batch_size = batch_size or settings.file.email.batch_size
    now = now or utcnow()
    report = BatchReport()
    with store.session() as session:
        run_ids = session.scalars(
            select(_D.c.run_id).where(_sendable(now, include_queued=False)).distinct().order_by(_D.c.run_id)
        ).all()
    if not run_ids:
        return report
    channel = channel or mail_channel(settings)
    for run_id in run_ids:
        for first_id, last_id in batch_ranges(store, run_id, batch_size, now=now, retries_only=True):
            report.add(send_batch(settings, store, run_id, first_id, last_id, now=now, channel=channel))
    return report
