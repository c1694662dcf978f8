"""OneRoster 1.1 CSV bundles: reading and checking them before anything is stored."""

from .bundle import parse_bundle
from .files import Opener, open_bundle, zip_opener
from .rows import (
    AccountRow,
    Bundle,
    BundleProblem,
    GuardianRow,
    MalformedBundle,
    RejectedRow,
    SchoolRow,
    StaffRow,
    StudentRow,
)

__all__ = [
    "AccountRow",
    "Bundle",
    "BundleProblem",
    "GuardianRow",
    "MalformedBundle",
    "Opener",
    "RejectedRow",
    "SchoolRow",
    "StaffRow",
    "StudentRow",
    "open_bundle",
    "parse_bundle",
    "zip_opener",
]
