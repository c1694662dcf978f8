"""Generated input beyond the API (tests/test_api_fuzz.py covers that): every form on the
pages and the roster parser. Whatever arrives, the answer is a page or a list of
problems, never a server error or an exception nobody catches."""

from __future__ import annotations

import io
import zipfile
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk.roster import MalformedBundle, parse_bundle, zip_opener
from helpdesk.roster.bundle import REQUIRED_COLUMNS
from helpdesk.web.forms import FORMS

from .conftest import ROSTER
from .test_pages import csrf_token, signed_in

# -- The roster parser ---------------------------------------------------------------

# Cells as a careless or hostile export has them: any text, quotes, separators, line
# breaks, NUL, very long values, numbers where text goes and text where dates go.
cells = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "tobedeleted", "active", "true", "maybe", "2011-13-45", "student",
                     "parent", "org-ash", '"', ",", "\r\n", "\x00", "9" * 400, "é" * 50]),
)  # fmt: skip


def _bundle_with(name: str, rows: list[list[str]], encoding: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in ROSTER.iterdir():
            if file.name == name:
                header = ",".join(REQUIRED_COLUMNS[name]) + "\n"
                body = "".join(",".join(f'"{c}"' if "," in c else c for c in row) + "\n"
                               for row in rows)  # fmt: skip
                archive.writestr(name, (header + body).encode(encoding, errors="replace"))
            else:
                archive.write(file, file.name)
    return buffer.getvalue()


@pytest.mark.parametrize("name", sorted(REQUIRED_COLUMNS))
@settings(max_examples=60, deadline=None, database=None)
@given(
    rows=st.lists(st.lists(cells, min_size=0, max_size=25), max_size=6),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
)
def test_the_roster_parser_reports_problems_and_never_fails(name, rows, encoding):
    content = _bundle_with(name, rows, encoding)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        try:
            parse_bundle(zip_opener(archive))
        except MalformedBundle as refused:
            assert refused.problems  # each with its file and, where it has one, its row


@settings(max_examples=60, deadline=None, database=None)
@given(blob=st.binary(max_size=2000))
def test_the_roster_parser_takes_any_bytes_as_a_file(tmp_path_factory, blob):
    folder = tmp_path_factory.mktemp("bundle")
    for file in ROSTER.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    (folder / "users.csv").write_bytes(blob)
    from helpdesk.roster import open_bundle

    try:
        parse_bundle(open_bundle(folder))
    except MalformedBundle as refused:
        assert refused.problems


# -- Every form on the pages ---------------------------------------------------------


class _Forms(HTMLParser):
    """The POST forms of a page (action, field names) and the links to follow."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, list[str]]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form" and (found.get("method") or "").lower() == "post":
            self.forms.append((found.get("action") or "", []))
        elif tag in ("input", "textarea", "select") and self.forms and found.get("name"):
            self.forms[-1][1].append(str(found["name"]))
        elif tag == "a" and (found.get("href") or "").startswith("/"):
            self.links.append(str(found["href"]))


def _crawl(browser, start: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Every POST form reachable in two clicks from ``start``, by action."""
    seen, forms, queue = set(), {}, [(path, 0) for path in start]
    while queue:
        path, depth = queue.pop(0)
        if path in seen or path.startswith(("/assets", "/static", "/sign-out")):
            continue
        seen.add(path)
        page = browser.get(path)
        if page.status_code != 200 or "text/html" not in page.content_type:
            continue
        parsed = _Forms()
        parsed.feed(page.text)
        for action, names in parsed.forms:
            target = (urljoin(path, action) if action else path).split("?")[0]
            if target != "/sign-out":  # it would end the session the crawl goes on in
                forms.setdefault(target, (path, names))
        if depth < 2:
            queue += [(link.split("#")[0], depth + 1) for link in parsed.links[:40]]
    return forms


values = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["", " ", "0", "-1", "9" * 40, "2026-02-30", "P9", "<script>", "%00",
                     "../../etc/passwd", "a" * 5000, "x@y", "INC-999999999999999999"]),
)  # fmt: skip


@pytest.mark.parametrize(
    ("who", "start"),
    [
        ("ashgrove", ["/incidents", *(f"/report/{kind}" for kind in FORMS)]),
        ("agent", ["/queue", "/dashboard"]),
        ("admin", ["/admin/rules", "/admin/queues", "/admin/sla", "/admin/users",
                   "/admin/roster"]),
        (None, ["/sign-in"]),
    ],
)  # fmt: skip
def test_no_generated_form_post_gets_a_server_error(app, actors, client, who, start):
    from .samples import FIONA_RESET, file

    file(client, actors.ashgrove, **FIONA_RESET)  # an incident for the pages to show
    browser = signed_in(app, getattr(actors, who).email) if who else app.test_client()
    forms = _crawl(browser, start)
    assert len(forms) >= (1 if who is None else 2), forms
    for action, (page, names) in sorted(forms.items()):
        _fuzz_form(browser, page, action, [n for n in names if n != "csrf_token"])


def _fuzz_form(browser, page: str, action: str, fields: list[str]) -> None:
    @given(data=st.fixed_dictionaries({name: values for name in fields}))
    @settings(max_examples=15, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def posts_without_a_server_error(data):
        answer = browser.post(action, data={**data, "csrf_token": csrf_token(browser, page)})
        assert answer.status_code < 500, (action, data, answer.text[:500])

    posts_without_a_server_error()
