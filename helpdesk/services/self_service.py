"""Self-service recovery: a parent recovers their password or username on a public page,
checked against the school's records, and the result goes to the address on file through
the same fulfilment, credential store and outbox as an incident. When that does not help,
the parent hands over to their child's school: an incident with the diagnosis the page
never showed them.

Whatever matched, the page answers the same, in the same time (``SELF_SERVICE_ANSWER_MS``
is the least any answer takes). Attempts are limited per client address, typed email and
typed account in sliding windows (``verification_limits``); a target that reaches its
limit is locked and its holder emailed. Every attempt is a ``RecoveryAttempt`` row
without what was typed.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ..domain.lifecycle import SELF_SERVICE_FAILED
from ..domain.matching import postcodes_match
from ..domain.moments import shown
from ..domain.recovery import FINDS_BY, PASSWORD, USERNAME
from ..domain.roles import SELF_SERVICE
from ..extensions import db
from ..models import (
    SELF_SERVICE_EMAIL,
    Guardian,
    GuardianStudent,
    PortalAccount,
    RecoveryAttempt,
    School,
    Student,
    User,
    utcnow,
)
from . import filing, mail, outbox, verification_limits
from .uow import unit_of_work
from .users import Principal
from .verification_limits import Attempt, Target
from .verification_result import MATCH, MISMATCH, NOT_FOUND, Verification

ANSWER = ("If these details match the school's records, we have sent an email to the "
          "address we hold.")  # fmt: skip
HANDED_OVER = ("If these details match the school's records, the school will contact you "
               "within 5 working days.")  # fmt: skip
NOTICE_JOB = "deliver_recovery_notice"
# A match is sent at once whatever the rules (which still say where it is filed): every
# answer matched the records, and it goes only to the address on file.
APPROVED = "approved by the self-service check: every answer matched the records"
_TYPE_FOR = {PASSWORD: "parent_password_reset", USERNAME: "username_reminder"}
_LIMITS = {"client": "SELF_SERVICE_LIMIT_PER_CLIENT", "email": "SELF_SERVICE_LIMIT_PER_EMAIL",
           "target": "SELF_SERVICE_LIMIT_PER_TARGET"}  # fmt: skip


def questions(kind: str) -> tuple[str, ...]:
    """What the page for ``kind`` (password or username) asks, as configured."""
    setting = "SELF_SERVICE_PASSWORD_QUESTIONS" if kind == PASSWORD else (
        "SELF_SERVICE_USERNAME_QUESTIONS")  # fmt: skip
    asked: tuple[str, ...] = current_app.config[setting]
    return asked


def _digest(value: str, length: int = 24) -> str:
    """A keyed digest of something typed: counters and rows hold this, never the value."""
    key = current_app.config["SECRET_KEY"].encode()
    typed = value.strip().casefold().encode()
    return hmac.new(key, typed, hashlib.sha256).hexdigest()[:length]


def attempt_for(kind: str, typed: dict[str, Any], client: str) -> Attempt:
    """What an attempt counts against: the client, the typed email, and the typed account
    (its username, or the email a username is asked for), each as a keyed digest."""
    finds = typed[FINDS_BY[kind]]
    counters = [("client", f"recovery-client:{_digest(client)}")]
    if typed.get("email"):
        counters.append(("email", f"recovery-email:{_digest(typed['email'])}"))
    limits = {which: _LIMITS[which] for which, _ in [*counters, ("target", "")]}
    target = Target(f"recovery-{kind}:{_digest(str(finds))}", "this account")
    return Attempt(target, tuple(counters), limits)


@dataclass
class Found:
    """What the records say of the typing: per question, for staff, and the account the
    typing pointed at most nearly (the one a hand-over goes to the school of)."""

    check: Verification
    account: PortalAccount | None = None
    guardian: Guardian | None = None
    school: School | None = None
    targets: list[int] = field(default_factory=list)  # holders of the typed account


def _parent_accounts(condition: Any) -> list[PortalAccount]:
    return list(db.session.execute(
        sa.select(PortalAccount).join(Guardian, PortalAccount.guardian_id == Guardian.id)
        .where(condition, PortalAccount.portal == "parent", PortalAccount.active.is_(True),
               Guardian.active.is_(True))
        .order_by(PortalAccount.id).limit(20)
    ).scalars())  # fmt: skip


def _children(guardian_id: int) -> list[Student]:
    return list(db.session.execute(
        sa.select(Student).join(GuardianStudent, GuardianStudent.student_id == Student.id)
        .where(GuardianStudent.guardian_id == guardian_id, Student.active.is_(True),
               GuardianStudent.parental_responsibility.is_(True))
        .order_by(Student.id)
    ).scalars())  # fmt: skip


def typed_value(typed: dict[str, Any], name: str) -> str:
    """A typed answer as compared: trimmed, in lower case (as SQL's lower() finds it)."""
    return str(typed.get(name) or "").strip().lower()


def _compare(asked: tuple[str, ...], typed: dict[str, Any], account: PortalAccount,
             children: list[Student]) -> Verification:  # fmt: skip
    guardian = account.guardian
    assert guardian is not None
    v = Verification(guardian_id=guardian.id, account_id=account.id)
    on_file = {
        "username": typed_value(typed, "username") == account.username.lower(),
        "email": bool(guardian.email)
        and typed_value(typed, "email") == (guardian.email or "").lower(),
        "postcode": postcodes_match(typed_value(typed, "postcode"), guardian.postcode),
        "child_birth_date": any(c.birth_date == typed.get("child_birth_date") for c in children),
    }  # fmt: skip
    reasons = {
        "username": "the username differs from the account's",
        "email": "the email differs from the one on file" if guardian.email
        else "there is no email on file for this parent",
        "postcode": "the postcode differs: address changed?" if guardian.postcode
        else "the school record has no postcode for this parent",
        "child_birth_date": "no child of this parent at the school has that date of birth",
    }  # fmt: skip
    for name in asked:
        if on_file[name]:
            v.set(name, MATCH)
        else:
            v.set(name, MISMATCH, reasons[name])
    if guardian.access_revoked_at is not None:
        v.fail("the parent's portal access is revoked")
    if account.status == "disabled":
        v.fail("the parent's portal account is disabled")
    if not children:
        v.fail("the parent has no child at a school with parental responsibility")
    return v


def _check(kind: str, typed: dict[str, Any]) -> Found:
    """Compare what was typed with every parent account it could mean; the best wins."""
    asked = questions(kind)
    conditions = []
    if typed_value(typed, "username"):
        conditions.append(sa.func.lower(PortalAccount.username) == typed_value(typed, "username"))
    if typed_value(typed, "email"):
        conditions.append(sa.func.lower(Guardian.email) == typed_value(typed, "email"))
    candidates = _parent_accounts(sa.or_(*conditions)) if conditions else []
    best, best_score = None, -1
    for account in candidates:
        assert account.guardian is not None
        children = _children(account.guardian.id)
        check = _compare(asked, typed, account, children)
        score = sum(r["result"] == MATCH for r in check.fields.values()) + check.passed * 10
        school = db.session.get(School, children[0].school_id) if children else None
        found = Found(check, account, account.guardian, school)
        if score > best_score:
            best, best_score = found, score
    if best is None:
        check = Verification()
        words = "no parent account with that username" if kind == PASSWORD else (
            "no parent with that email on file")  # fmt: skip
        for name in asked:
            check.set(name, NOT_FOUND, words if name == asked[0] else None)
        best = Found(check)
    finds = FINDS_BY[kind]
    best.targets = sorted({a.guardian_id for a in candidates if a.guardian_id is not None
                           and _same(a, finds, typed)})  # fmt: skip
    return best


def _same(account: PortalAccount, finds: str, typed: dict[str, Any]) -> bool:
    """Is this account the one the typed username (or email) names?"""
    value = typed_value(typed, finds)
    if finds == "username":
        return account.username.lower() == value
    return bool(account.guardian and (account.guardian.email or "").lower() == value)


class RecoveryLimited(Exception):
    """Too many attempts: nothing was checked. ``until`` is when to try again."""

    def __init__(self, until: str, retry_after: int) -> None:
        super().__init__(until)
        self.until, self.retry_after = until, retry_after


def allowed(kind: str, typed: dict[str, Any], client: str) -> Attempt:
    """The attempt, when no limit refuses it (checked before any record is read); a
    refusal is recorded and raised as RecoveryLimited."""
    attempt = attempt_for(kind, typed, client)
    try:
        verification_limits.check_allowed(attempt)
    except verification_limits.VerificationLimited as error:
        with unit_of_work():
            record_attempt(kind, "limited", client, None)
        seconds = int(error.details["retry_after_seconds"])
        raise RecoveryLimited(error.message, seconds) from None
    return attempt


def recover(kind: str, typed: dict[str, Any], client: str) -> int:
    """One attempt of ``kind`` (password or username): limited, checked, recorded, and on
    a match fulfilled like an incident. Returns the attempt's id (a hand-over names it);
    the caller answers the same whatever happened."""
    attempt = allowed(kind, typed, client)
    found = _check(kind, typed)
    lock = verification_limits.count(attempt)  # every attempt counts, matched or not
    with unit_of_work():
        row = record_attempt(
            kind, "matched" if found.check.passed else "not_matched", client, found
        )
        if found.check.passed:
            _fulfil(kind, found, row)
        if lock is not None and found.targets:
            row.locked_guardian_ids = found.targets
            outbox.promise(NOTICE_JOB, row.id, "mail")
    return row.id


def record_attempt(kind: str, outcome: str, client: str, found: Found | None) -> RecoveryAttempt:
    row = RecoveryAttempt(
        at=utcnow(), kind=kind, outcome=outcome, client=_digest(client, 16),
        guardian_id=found.guardian.id if found and found.guardian else None,
        portal_account_id=found.account.id if found and found.account else None,
        school_id=found.school.id if found and found.school else None,
        field_results=found.check.results() if found else {},
    )  # fmt: skip
    db.session.add(row)
    db.session.flush()
    return row


def filer_for(school: School) -> Principal:
    """The self-service user, filing for the school the records point to."""
    user_id = db.session.execute(
        sa.select(User.id).where(User.email == SELF_SERVICE_EMAIL)
    ).scalar_one()
    return Principal(user_id, SELF_SERVICE_EMAIL, SELF_SERVICE, school.id, school.code,
                     school.nation)  # fmt: skip


def _fulfil(kind: str, found: Found, row: RecoveryAttempt) -> None:
    """File the matched recovery as an incident, fulfilled at once in the queue the rules
    choose; one already open for the account carries on instead."""
    assert found.school is not None and found.guardian is not None
    filer = filer_for(found.school)
    details = {"recovery": kind, "parent_name": found.guardian.full_name}
    summary = {PASSWORD: "Forgot password (self-service)",
               USERNAME: "Forgot username (self-service)"}[kind]  # fmt: skip
    prepared = filing.decide(filer, _TYPE_FOR[kind], {"summary": summary}, details, found.check,
                             approved=APPROVED)  # fmt: skip
    if prepared.repeats is not None:
        row.outcome, row.incident_id = "already_open", prepared.repeats.id
        return
    row.incident_id = filing.write(filer, prepared).incident.id


def hand_over(attempt_id: int, typed: dict[str, str], client: str) -> None:
    """The parent asks their child's school for help after an attempt: an incident for the
    school the records point to, with the attempt's per-field comparison for staff. When
    the typing pointed at no school, nothing is filed (the parent is told the same)."""
    earlier = db.session.get(RecoveryAttempt, attempt_id)
    with unit_of_work():
        school = db.session.get(School, earlier.school_id or 0) if earlier else None
        row = record_attempt("handover", "handed_over" if school else "not_matched", client, None)
        if earlier is None or school is None:
            return
        row.school_id, row.guardian_id = school.id, earlier.guardian_id
        filer = filer_for(school)
        check = Verification(guardian_id=earlier.guardian_id)
        results = earlier.field_results or {}
        for name, result in results.get("fields", {}).items():
            check.set(name, result["result"], result.get("reason"))
        for reason in results.get("reasons", []):
            check.fail(reason)
        if earlier.outcome == "matched":
            check.fail("the details matched: the result was emailed to the address on file, "
                       "which the parent may no longer read")  # fmt: skip
        details = {"recovery": earlier.kind, "parent_name": typed["parent_name"],
                   "child_name": typed["child_name"], "contact_phone": typed["contact_phone"],
                   "recovery_attempt": earlier.id}  # fmt: skip
        summary = f"Could not recover their {earlier.kind} on the self-service page"
        prepared = filing.decide(filer, SELF_SERVICE_FAILED, {"summary": summary}, details,
                                 check)  # fmt: skip
        row.incident_id = filing.write(filer, prepared).incident.id


def deliver_notice(attempt_id: int) -> str:
    """Tell the holders of an account whose self-service was just locked, at the address
    on file; idempotent (a sent notice is not sent again)."""
    with unit_of_work():
        row = db.session.execute(
            sa.select(RecoveryAttempt).where(RecoveryAttempt.id == attempt_id).with_for_update()
        ).scalar_one_or_none()  # fmt: skip
        if row is None or row.notice_sent_at is not None:
            outbox.complete(NOTICE_JOB, attempt_id)
            return "done"
        minutes = max(1, int(current_app.config["VERIFY_LOCK_MINUTES"]))
        until = shown(row.at + timedelta(minutes=minutes), current_app.config["DISPLAY_TIMEZONE"])
        for guardian in db.session.execute(
            sa.select(Guardian).where(Guardian.id.in_(row.locked_guardian_ids or []),
                                      Guardian.active.is_(True), Guardian.email.is_not(None))
        ).scalars():  # fmt: skip
            tag = hashlib.sha256(f"{row.id}:{guardian.id}".encode()).hexdigest()[:12]
            try:
                mail.send(mail.Email(
                    guardian.email or "", "Someone tried to recover your parent portal account",
                    "recovery_locked", {"name": guardian.full_name, "until": until,
                                        "kind": row.kind},
                    f"<recovery-{tag}@{mail.message_domain()}>",
                ))  # fmt: skip
            except mail.UnusableAddress:
                continue
            except (smtplib.SMTPException, OSError) as error:
                raise mail.DeliveryFailed(mail.failure_reason(error)) from error
        row.notice_sent_at = utcnow()
        outbox.complete(NOTICE_JOB, attempt_id)
    return "sent"
