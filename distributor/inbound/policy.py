"""What each inbound outcome does to a subscriber: declared as data, applied in one place.

- hard bounce (5.x.x): bounced at once;
- soft bounce (4.x.x): scored, like GNU Mailman's bounce score: each one is kept as a
  `soft_bounce` event at most once a day, and when they fall on
  `inbound.soft_bounce_threshold` different days within `soft_bounce_window_days` the
  address is bounced. An operator's reinstatement starts the count again;
- complaint: complained, whatever the status was (it stops every edition);
- unsubscribe (the mailto half of List-Unsubscribe): as the one-click POST does.

Every change is a subscriber event carrying the evidence (events.py); an outcome that
changes nothing (a replayed bounce for an address already bounced) records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from distributor.inbound import events
from distributor.inbound.classify import Classification
from distributor.settings import Settings
from distributor.store.models import DeliveryRow, SubscriberEventRow, SubscriberRow


@dataclass(frozen=True)
class Rule:
    """One outcome's effect."""

    event: str  # the event kind recorded when it applies
    status: str  # the subscriber's status afterwards (for scored rules: once the score is reached)
    applies_to: tuple[str, ...]  # statuses it changes; others are left as they are
    scored: bool = False  # counts towards a threshold before changing the status


RULES: dict[str, Rule] = {
    "hard_bounce": Rule("bounced", "bounced", ("pending", "confirmed")),
    "soft_bounce": Rule("soft_bounce", "bounced", ("pending", "confirmed"), scored=True),
    # A complaint outranks an unsubscribe or a bounce: suppressed for every edition.
    "complaint": Rule("complained", "complained", ("pending", "confirmed", "unsubscribed", "bounced")),
    "unsubscribe": Rule("unsubscribed", "unsubscribed", ("pending", "confirmed")),
}


@dataclass
class Applied:
    """What the policy did for one outcome."""

    subscriber_id: int | None = None
    run_id: int | None = None
    status: str = ""  # the subscriber's status afterwards
    events: list[str] = field(default_factory=list)  # event kinds recorded
    reason: str = ""  # why nothing changed

    @property
    def changed(self) -> bool:
        return bool(self.events)


def soft_bounce_score(session, subscriber_id: int, now: datetime, window_days: int) -> int:  # noqa: ANN001
    """Different days with a soft bounce in the window, since the last reinstatement."""
    since = now - timedelta(days=window_days)
    reinstated = session.scalar(
        select(func.max(SubscriberEventRow.at)).where(
            SubscriberEventRow.subscriber_id == subscriber_id, SubscriberEventRow.kind == "reinstated"
        )
    )
    if reinstated is not None and reinstated > since:
        since = reinstated
    stamps = session.scalars(
        select(SubscriberEventRow.at).where(
            SubscriberEventRow.subscriber_id == subscriber_id,
            SubscriberEventRow.kind == "soft_bounce",
            SubscriberEventRow.at >= since,
        )
    ).all()
    return len({stamp.date() for stamp in stamps})


def apply(
    settings: Settings,
    session,  # noqa: ANN001
    found: Classification,
    source: str,
    now: datetime,
    *,
    extra: dict | None = None,
    subscriber_id: int | None = None,
    run_id: int | None = None,
) -> Applied:
    """Apply one classified outcome inside `session` (the caller commits).

    The delivery the outcome names decides who and which run; without one (a signed ESP
    webhook that names only the address), `subscriber_id` and `run_id` do.
    """
    rule = RULES.get(found.outcome)
    if rule is None:
        return Applied(reason="nothing to act on")
    delivery_id = None
    if found.delivery_id is not None:
        delivery = session.get(DeliveryRow, found.delivery_id)
        if delivery is None:
            return Applied(reason=f"delivery {found.delivery_id} no longer exists")
        subscriber_id, run_id, delivery_id = delivery.subscriber_id, delivery.run_id, delivery.id
    if subscriber_id is None:
        return Applied(reason="no delivery or subscriber named")
    subscriber = session.get(SubscriberRow, subscriber_id)
    if subscriber is None:
        return Applied(reason="subscriber no longer exists")
    done = Applied(subscriber.id, run_id, subscriber.status)
    if subscriber.status not in rule.applies_to:
        done.reason = f"subscriber is {subscriber.status}"
        return done
    detail = {**found.detail(), **(extra or {})}

    def note(kind: str, more: dict | None = None) -> None:
        events.record(
            session, subscriber.id, kind, source, now=now, run_id=run_id,
            delivery_id=delivery_id, detail={**detail, **(more or {})},
        )
        done.events.append(kind)

    if rule.scored:
        cfg = settings.file.inbound
        today = [a for a in session.scalars(
            select(SubscriberEventRow.at).where(
                SubscriberEventRow.subscriber_id == subscriber.id,
                SubscriberEventRow.kind == "soft_bounce",
                SubscriberEventRow.at >= now - timedelta(days=1),
            )
        ).all() if a.date() == now.date()]
        if today:
            done.reason = "a soft bounce was already counted today"
            return done
        note(rule.event)
        session.flush()
        score = soft_bounce_score(session, subscriber.id, now, cfg.soft_bounce_window_days)
        if score < cfg.soft_bounce_threshold:
            return done
        detail["score"] = f"{score} days with soft bounces in {cfg.soft_bounce_window_days}"
    subscriber.status = rule.status
    subscriber.status_changed_at = now
    note(rule.status if rule.scored else rule.event)
    done.status = rule.status
    return done
