"""Work that must follow a commit (the inline pusher today, webhooks later).

Code that makes a change queues its follow-up in the session; the session's commit runs
it and a rollback drops it. No view has to remember to call anything, and nothing runs
for a change that was not kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, SessionTransaction

from models import db

log = logging.getLogger(__name__)

_QUEUE = "after_commit"  # key of session.info: {name: job}


def queue(name: str, job: Callable[[], None]) -> None:
    """Run `job` once after the current transaction commits, however often it is queued."""
    db.session.info.setdefault(_QUEUE, {})[name] = job


def discard(name: str) -> None:
    """Take a queued job back: for the one caller that does the job itself."""
    db.session.info.get(_QUEUE, {}).pop(name, None)


# Flask-SQLAlchemy's scoped session: these hold for every session, in every app.
@sa.event.listens_for(db.session, "after_commit")
def _run(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: the work is not kept until the outer commit
    for name, job in session.info.pop(_QUEUE, {}).items():
        try:
            job()
        except Exception:
            # The change is committed: a failed follow-up must not turn it into a 500, nor
            # keep the other jobs from running.
            log.exception("after-commit job %r failed", name)


# Every end of the outermost transaction: after a commit (its jobs have run), a rollback or
# a close (Flask-SQLAlchemy's teardown), so that work which was not kept never runs.
@sa.event.listens_for(db.session, "after_transaction_end")
def _drop(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # not a savepoint
        session.info.pop(_QUEUE, None)
