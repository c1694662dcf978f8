"""Write a OneRoster bundle of N students with their guardians (default 100,000).

Families have one to three children at one school and one or two guardians, every
person has a portal account, and every guardian a PIN. Deterministic for a given seed.

    python -m bench.generate_roster [--students 100000] [--out bench/out/roster-100k]
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import date, timedelta
from pathlib import Path

USERS_HEADER = [
    "sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds", "role",
    "username", "userIds", "givenName", "familyName", "middleName", "identifier", "email",
    "sms", "phone", "agentSourcedIds", "grades", "password", "metadata.postcode",
    "metadata.yearStage", "metadata.mainContact", "metadata.parentalResponsibility",
]  # fmt: skip
GIVEN = ["Isla", "Olivia", "Amelia", "Ava", "Freya", "Emily", "Jack", "Noah", "Leo",
         "Harris", "Oliver", "Rory", "Aoife", "Zoë", "Siobhán", "Mohammed", "Priya", "Euan",
         "Niamh", "Catriona", "Alexander", "Grace", "Lewis", "Mia", "Finlay", "Ruaridh",
         "Anjali"]  # fmt: skip
FAMILY = ["Campbell", "Smith", "Brown", "Wilson", "Robertson", "Thomson", "Patel", "Kowalski",
          "Ní Bhriain", "O'Neill-Kerr", "MacDonald", "Fraser", "Hughes", "Mitchell", "Ross",
          "Khan", "Murray", "Reid", "Kapoor", "Evans", "Jones", "Davies", "Nowak"]  # fmt: skip
NATIONS = ["SCT", "ENG", "WLS", "NIR"]
STAMP = "2026-09-01T08:00:00.000Z"


def generate(out: Path, students: int, seed: int = 7, schools: int | None = None) -> Path:
    """N students (and their families) at ``schools`` schools (one per 1,700 by default)."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    schools = schools or max(1, students // 1700)
    with (out / "orgs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "sourcedId",
                "status",
                "dateLastModified",
                "name",
                "type",
                "identifier",
                "parentSourcedId",
                "metadata.nation",
            ]
        )
        for s in range(schools):
            w.writerow(
                [
                    f"org-{s}",
                    "active",
                    STAMP,
                    f"School {s}",
                    "school",
                    f"{6000000 + s}",
                    "",
                    NATIONS[s % 4],
                ]
            )
    users = (out / "users.csv").open("w", newline="")
    demo = (out / "demographics.csv").open("w", newline="")
    accounts = (out / "portal_accounts.csv").open("w", newline="")
    with users, demo, accounts:
        uw, dw, aw = csv.writer(users), csv.writer(demo), csv.writer(accounts)
        uw.writerow(USERS_HEADER)
        dw.writerow(["sourcedId", "status", "dateLastModified", "birthDate"])
        aw.writerow(["sourcedId", "accountNumber", "username", "pin", "portal"])
        made, family, account = 0, 0, 0
        while made < students:
            family += 1
            school = rng.randrange(schools)
            surname = rng.choice(FAMILY)
            postcode = f"EH{rng.randint(1, 99)} {rng.randint(1, 9)}{rng.choice('ABDEFGH')}Z"
            kids = [
                f"stu-{family}-{i}"
                for i in range(min(rng.choice([1, 1, 2, 2, 3]), students - made))
            ]
            for kid in kids:
                given = rng.choice(GIVEN)
                uw.writerow(
                    [
                        kid,
                        "active",
                        STAMP,
                        "true",
                        f"org-{school}",
                        "student",
                        f"{given.lower()}.{family}",
                        "",
                        given,
                        surname,
                        "",
                        f"S{family:07d}{kid[-1]}",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        postcode,
                        f"P{rng.randint(1, 7)}",
                        "",
                        "",
                    ]
                )
                born = date(2010, 1, 1) + timedelta(days=rng.randrange(4000))
                dw.writerow([kid, "active", STAMP, born.isoformat()])
                account += 1
                aw.writerow(
                    [kid, f"S{account:08d}", f"{given[0].lower()}{family}{kid[-1]}", "", "student"]
                )
            made += len(kids)
            for g in range(rng.choice([1, 2, 2])):
                gid = f"par-{family}-{g}"
                given = rng.choice(GIVEN)
                email = "" if rng.random() < 0.05 else f"{given.lower()}.{family}@mail.example"
                uw.writerow(
                    [
                        gid,
                        "active",
                        STAMP,
                        "true",
                        f"org-{school}",
                        "parent",
                        f"{given.lower()}{family}",
                        "",
                        given,
                        surname,
                        "",
                        "",
                        email,
                        "",
                        f"07700 9{family % 100000:05d}",
                        ",".join(kids),
                        "",
                        "",
                        postcode,
                        "",
                        "true" if g == 0 else "false",
                        "false" if rng.random() < 0.03 else "true",
                    ]
                )
                account += 1
                aw.writerow(
                    [
                        gid,
                        f"P{account:08d}",
                        f"{given.lower()}.{family}.{g}",
                        f"{rng.randrange(10**6):06d}",
                        "parent",
                    ]
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "roster-100k")
    args = parser.parse_args()
    print(generate(args.out, args.students))


if __name__ == "__main__":
    main()
