"""OneRoster 1.1 CSV bundles: reading and checking them before anything is stored."""

from .bundle import (
    AccountRow,
    Bundle,
    BundleProblem,
    GuardianRow,
    MalformedBundle,
    RejectedRow,
    SchoolRow,
    StaffRow,
    StudentRow,
    open_bundle,
    parse_bundle,
)

__all__ = [
    "AccountRow",
    "Bundle",
    "BundleProblem",
    "GuardianRow",
    "MalformedBundle",
    "RejectedRow",
    "SchoolRow",
    "StaffRow",
    "StudentRow",
    "open_bundle",
    "parse_bundle",
]
