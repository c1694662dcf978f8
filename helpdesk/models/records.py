"""The copy of the school information system's records, kept up to date by roster import."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import BigId, UTCDateTime, utcnow

NATIONS = ("SCT", "ENG", "WLS", "NIR")


class School(db.Model):  # type: ignore[name-defined]
    """A school; ``code`` is its official identifier and how the API names it."""

    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sourced_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    nation: Mapped[str] = mapped_column(sa.String(3))
    timezone: Mapped[str] = mapped_column(sa.String(64), default="Europe/London")
    # The school's helpdesk hours, e.g. "mon-thu 08:00-16:30, fri 08:00-15:00";
    # None: the default Mon-Fri 08:00-16:30.
    working_hours: Mapped[str | None] = mapped_column(sa.String(200))
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Staff(db.Model):  # type: ignore[name-defined]
    """A school employee (OneRoster role teacher or administrator)."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sourced_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    school_id: Mapped[int] = mapped_column(sa.ForeignKey("schools.id"), index=True)
    role: Mapped[str] = mapped_column(sa.String(32))
    username: Mapped[str | None] = mapped_column(sa.String(255))
    given_name: Mapped[str] = mapped_column(sa.String(255))
    family_name: Mapped[str] = mapped_column(sa.String(255))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    phone: Mapped[str | None] = mapped_column(sa.String(64))
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    school: Mapped[School] = relationship(lazy="joined", innerjoin=True)

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


class Student(db.Model):  # type: ignore[name-defined]
    """A pupil; ``student_number`` is the school's own identifier for them."""

    __tablename__ = "students"
    __table_args__ = (
        sa.Index("ix_students_school_number", "school_id", "student_number"),
        sa.Index("ix_students_school_family_key", "school_id", "family_name_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sourced_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    school_id: Mapped[int] = mapped_column(sa.ForeignKey("schools.id"))
    student_number: Mapped[str] = mapped_column(sa.String(64))
    given_name: Mapped[str] = mapped_column(sa.String(255))
    middle_name: Mapped[str | None] = mapped_column(sa.String(255))
    family_name: Mapped[str] = mapped_column(sa.String(255))
    # name_key(family_name): finds a child whatever accents or spacing were typed.
    family_name_key: Mapped[str] = mapped_column(sa.String(255))
    birth_date: Mapped[date | None] = mapped_column(sa.Date)
    postcode: Mapped[str | None] = mapped_column(sa.String(16))
    year_stage: Mapped[str | None] = mapped_column(sa.String(8))
    # The student's own address, where the school gives pupils one: notices of what was
    # done to their account go there (their one-time passwords go to the filing employee).
    email: Mapped[str | None] = mapped_column(sa.String(320))
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


class Guardian(db.Model):  # type: ignore[name-defined]
    """A parent or guardian; their email and phone are *the address on file*."""

    __tablename__ = "guardians"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sourced_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    given_name: Mapped[str] = mapped_column(sa.String(255))
    family_name: Mapped[str] = mapped_column(sa.String(255))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    phone: Mapped[str | None] = mapped_column(sa.String(64))
    postcode: Mapped[str | None] = mapped_column(sa.String(16))
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Set by an access revocation; no reset targets this guardian until an admin restores it.
    access_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    access_revoked_reason: Mapped[str | None] = mapped_column(sa.String(64))
    # The revocation incident, where an admin's restoration is recorded. Not a foreign
    # key: incidents already point at guardians, and a cycle would order neither table.
    access_revoked_by_incident_id: Mapped[int | None] = mapped_column(sa.BigInteger)

    links: Mapped[list[GuardianStudent]] = relationship(back_populates="guardian")

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


class GuardianStudent(db.Model):  # type: ignore[name-defined]
    """The relationship of one guardian to one student."""

    __tablename__ = "guardian_students"

    guardian_id: Mapped[int] = mapped_column(sa.ForeignKey("guardians.id"), primary_key=True)
    student_id: Mapped[int] = mapped_column(
        sa.ForeignKey("students.id"), primary_key=True, index=True
    )
    main_contact: Mapped[bool] = mapped_column(default=False)
    parental_responsibility: Mapped[bool] = mapped_column(default=False)

    guardian: Mapped[Guardian] = relationship(back_populates="links")
    student: Mapped[Student] = relationship()


class SchoolClass(db.Model):  # type: ignore[name-defined]
    """A class from the roster's classes.csv: who teaches it and who is in it are its
    enrolments. A teacher resets the passwords of their own classes' students."""

    __tablename__ = "classes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sourced_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    school_id: Mapped[int] = mapped_column(sa.ForeignKey("schools.id"), index=True)
    title: Mapped[str] = mapped_column(sa.String(255))
    class_code: Mapped[str | None] = mapped_column(sa.String(64))
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Enrollment(db.Model):  # type: ignore[name-defined]
    """One person in one class, from enrollments.csv: a teacher (staff) or a student."""

    __tablename__ = "enrollments"
    __table_args__ = (sa.Index("ix_enrollments_class_role", "class_id", "role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sourced_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    class_id: Mapped[int] = mapped_column(sa.ForeignKey("classes.id"))
    role: Mapped[str] = mapped_column(sa.String(16))  # teacher or student
    staff_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"), index=True)
    student_id: Mapped[int | None] = mapped_column(sa.ForeignKey("students.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PortalAccount(db.Model):  # type: ignore[name-defined]
    """An account on the parent or student portal; the PIN is only ever kept as a hash."""

    __tablename__ = "portal_accounts"
    # Usernames belong to the portal, which does not keep them unique (siblings share
    # initials); the account number is the key.
    __table_args__ = (
        sa.CheckConstraint("(guardian_id IS NULL) <> (student_id IS NULL)", name="one_owner"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_number: Mapped[str] = mapped_column(sa.String(64), unique=True)
    username: Mapped[str] = mapped_column(sa.String(255))
    portal: Mapped[str] = mapped_column(sa.String(16))
    guardian_id: Mapped[int | None] = mapped_column(sa.ForeignKey("guardians.id"), index=True)
    student_id: Mapped[int | None] = mapped_column(sa.ForeignKey("students.id"), index=True)
    pin_hash: Mapped[str | None] = mapped_column(sa.String(255))
    # active, locked (too many failed sign-ins) or disabled (access revoked).
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    must_change_password: Mapped[bool] = mapped_column(default=False)
    # The credential the built-in store keeps (services/credentials.py): argon2 hashes
    # only. A one-time password works once, then only to choose a new one, until it expires.
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    password_one_time: Mapped[bool] = mapped_column(default=False)
    password_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A reset link's token is "<selector>.<verifier>": the selector finds the row, the
    # verifier is checked against its argon2 hash. A new link voids the old one.
    reset_selector: Mapped[str | None] = mapped_column(sa.String(32), unique=True)
    reset_token_hash: Mapped[str | None] = mapped_column(sa.String(255))
    reset_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    guardian: Mapped[Guardian | None] = relationship()
    student: Mapped[Student | None] = relationship()
