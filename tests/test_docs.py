"""The project's documentation holds: every link in the README and docs/ leads to a file
in the repository, and the API page's examples get the answers it shows."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpdesk.extensions import db
from helpdesk.roster import open_bundle
from helpdesk.services.roster import import_roster

from .classes import bundle_with_classes
from .conftest import app_on_fresh_database

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_leads_inside_the_repository(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # an address outside (http, mailto): not this project's to keep
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        outside = not resolved.exists() or (ROOT not in resolved.parents and resolved != ROOT)
        no_heading = anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved)
        if outside or no_heading:
            broken.append(target)
    assert not broken, f"{page.name}: links that lead nowhere: {broken}"


def _examples() -> Iterator[tuple[str, str, dict[str, str], str, int]]:
    """(method, path, headers, body, status) of each ```http block of docs/api.md."""
    for block in re.findall(r"```http\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S):
        request, _, answer = block.rpartition("\nHTTP/1.1 ")
        status = int(answer.split()[0])
        head, _, body = request.partition("\n\n")
        first, *header_lines = head.strip().splitlines()
        method, path = first.split()[:2]
        headers = dict(line.split(": ", 1) for line in header_lines)
        yield method, path, headers, body.strip(), status


TOKENS = {
    "<employee token>": "ashgrove",
    "<agent token>": "agent",
    "<identity token>": "identity",
    "<other school's employee token>": "millbrook",
    "<teacher token>": "ashgrove_teacher",
}


def test_the_api_pages_examples_get_the_answers_it_shows(tmp_path_factory) -> None:
    examples = list(_examples())
    assert len(examples) >= 10
    with app_on_fresh_database(tmp_path_factory) as (app, _, actors):
        with app.app_context():  # the class-reset example needs the roster's classes
            bundle = bundle_with_classes(tmp_path_factory.mktemp("classes"))
            import_roster(open_bundle(bundle), source="tests")
            db.session.remove()
        client = app.test_client()
        for method, path, headers, body, status in examples:
            who = headers.pop("Authorization").removeprefix("Bearer ")
            actor = getattr(actors, TOKENS[who])
            sent = client.open(path, method=method, headers={**headers, **actor.headers},
                               data=body or None)  # fmt: skip
            assert sent.status_code == status, (method, path, sent.json)
            if body:
                json.loads(body)  # the page shows JSON a reader can copy


def test_the_demos_people_are_named_for_every_incident_type() -> None:
    from helpdesk.web.forms import FORMS

    page = (ROOT / "docs" / "api.md").read_text()
    for kind in FORMS:
        assert f"| {kind.replace('_', ' ')} |" in page, kind
