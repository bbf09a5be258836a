"""The dashboard's overview: how pushes, installs and deliveries went, as figures and charts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from markupsafe import Markup

from models import Pass, PushOutcomeCount, Registration, RegistrationEventCount, db
from passes import delivery
from passes.charts import Series, bar_chart

PUSH_HOURS = 48
INSTALL_DAYS = 30
LATENCY_DAYS = 7
# Push-to-download times are grouped in these buckets (upper bounds in seconds).
LATENCY_BUCKETS = [
    ("<10s", 10),
    ("10–60s", 60),
    ("1–10m", 600),
    ("10–60m", 3600),
    ("1–6h", 6 * 3600),
    ("6–24h", 24 * 3600),
    (">1d", None),
]
PUSH_COLORS = {
    "sent": "#34c759",
    "retry_later": "#ff9500",
    "failed": "#ff3b30",
    "removed": "#8e8e93",
}


@dataclass(frozen=True)
class Overview:
    active_passes: int
    devices: int
    passes: int
    not_downloaded: int  # devices pushed in the last LATENCY_DAYS that have not downloaded
    pushes: Markup
    installs: Markup
    latency: Markup


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def overview(now: datetime) -> Overview:
    latencies, not_downloaded = delivery.push_to_fetch(now - timedelta(days=LATENCY_DAYS))
    return Overview(
        active_passes=db.session.scalar(sa.select(sa.func.count(sa.distinct(Registration.pass_id))))
        or 0,
        devices=db.session.scalar(sa.select(sa.func.count(sa.distinct(Registration.device_id))))
        or 0,
        passes=db.session.scalar(sa.select(sa.func.count()).select_from(Pass)) or 0,
        not_downloaded=not_downloaded,
        pushes=_pushes_chart(now),
        installs=_installs_chart(now),
        latency=_latency_chart(latencies),
    )


def _pushes_chart(now: datetime) -> Markup:
    last = _hour(now)
    hours = [last - timedelta(hours=n) for n in range(PUSH_HOURS - 1, -1, -1)]
    counts: dict[str, dict[datetime, int]] = defaultdict(dict)
    rows = db.session.execute(
        sa.select(PushOutcomeCount.hour, PushOutcomeCount.outcome, PushOutcomeCount.count).where(
            PushOutcomeCount.hour >= hours[0]
        )
    )
    for hour, outcome, count in rows:
        counts[outcome][hour] = count
    series = [
        Series(outcome.replace("_", " "), color, [counts[outcome].get(h, 0) for h in hours])
        for outcome, color in PUSH_COLORS.items()
    ]
    return bar_chart(
        f"Pushes per hour by outcome, last {PUSH_HOURS} hours (UTC)",
        [f"{h:%H}h" for h in hours],
        series,
        label_every=6,
    )


def _installs_chart(now: datetime) -> Markup:
    today = now.date()
    days = [today - timedelta(days=n) for n in range(INSTALL_DAYS - 1, -1, -1)]
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=now.tzinfo)
    by_day: dict[str, dict[object, int]] = defaultdict(lambda: defaultdict(int))
    rows = db.session.execute(
        sa.select(
            RegistrationEventCount.hour, RegistrationEventCount.event, RegistrationEventCount.count
        ).where(RegistrationEventCount.hour >= since)
    )
    for hour, event, count in rows:
        kind = "installs" if event == delivery.REGISTERED else "removals"
        by_day[kind][hour.date()] += count
    return bar_chart(
        f"Installs and removals per day, last {INSTALL_DAYS} days (UTC)",
        [f"{d:%d %b}" for d in days],
        [
            Series("installs", "#0060df", [by_day["installs"][d] for d in days]),
            Series("removals", "#ff9500", [by_day["removals"][d] for d in days]),
        ],
        stacked=False,
        label_every=7,
    )


def _latency_chart(latencies: list[float]) -> Markup:
    counts = [0] * len(LATENCY_BUCKETS)
    for seconds in latencies:
        for index, (_, bound) in enumerate(LATENCY_BUCKETS):
            if bound is None or seconds < bound:
                counts[index] += 1
                break
    return bar_chart(
        f"Time from push to download, devices pushed in the last {LATENCY_DAYS} days",
        [label for label, _ in LATENCY_BUCKETS],
        [Series("devices", "#5856d6", [float(c) for c in counts])],
    )
