"""Opening a bundle's CSV files from a folder or a zip, the zip checked before anything is
inflated."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import InvalidInput
from .rows import BundleProblem, MalformedBundle

Opener = Callable[[str], IO[str] | None]


def open_bundle(path: str | Path) -> Opener:
    """A function that opens one CSV of the bundle at ``path`` (folder or zip), or None."""
    path = Path(path)
    if path.is_dir():

        def from_dir(name: str) -> IO[str] | None:
            file = path / name
            return file.open(encoding="utf-8-sig", newline="") if file.is_file() else None

        return from_dir
    if zipfile.is_zipfile(path):
        return zip_opener(zipfile.ZipFile(path))
    raise InvalidInput(
        f"{path} is neither a folder nor a zip file: give the folder holding orgs.csv, "
        "users.csv and demographics.csv, or a zip of them.",
        code="malformed_bundle",
    )


# A zip is checked before anything is inflated: a few hundred kilobytes can hold
# gigabytes ("zip bomb"). The sizes checked are the archive's own, which zipfile also
# holds each member to as it inflates it. 100,000 students with their families come to
# about 60 MB of CSV.
MAX_ZIP_MEMBERS = 50
MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024


def zip_opener(archive: zipfile.ZipFile) -> Opener:
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > MAX_ZIP_MEMBERS:
        raise MalformedBundle([BundleProblem(
            "zip", None, f"holds {len(members)} files; a roster bundle has at most "
            f"{MAX_ZIP_MEMBERS}: zip only the bundle's CSV files")])  # fmt: skip
    total = sum(info.file_size for info in members)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise MalformedBundle([BundleProblem(
            "zip", None, f"would unpack to {total // 2**20} MiB; a roster bundle may unpack "
            f"to at most {MAX_UNCOMPRESSED_BYTES // 2**20} MiB")])  # fmt: skip
    # Files may sit at the top of the zip or inside one folder.
    by_name = {Path(info.filename).name: info.filename for info in members}

    def from_zip(name: str) -> IO[str] | None:
        if name not in by_name:
            return None
        return io.TextIOWrapper(archive.open(by_name[name]), encoding="utf-8-sig", newline="")

    return from_zip
