"""Bearer tokens: a revoked token or a deactivated user is refused, within the cache's life."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import ApiToken, User, utcnow
from helpdesk.services.users import Principal, TokenCache


@pytest.fixture
def no_token_cache(app):
    """Look every token up, as if TOKEN_CACHE_SECONDS were 0."""
    saved = app.extensions.get("helpdesk_token_cache")
    app.extensions["helpdesk_token_cache"] = TokenCache(0)
    yield
    app.extensions["helpdesk_token_cache"] = saved


def test_a_revoked_token_is_refused(client, actors, no_token_cache):
    headers = actors.agent.headers
    assert client.get("/api/v1/queues", headers=headers).status_code == 200
    db.session.execute(
        sa.update(ApiToken).where(ApiToken.user_id == sa.select(User.id).where(
            User.email == actors.agent.email).scalar_subquery()).values(revoked_at=utcnow())
    )  # fmt: skip
    response = client.get("/api/v1/queues", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json["message"]


def test_a_deactivated_user_is_refused(client, actors, no_token_cache):
    db.session.execute(sa.update(User).where(User.email == actors.agent.email).values(active=False))
    assert client.get("/api/v1/queues", headers=actors.agent.headers).status_code == 401


def test_the_token_cache_forgets_after_its_life():
    principal = Principal(1, "a@its.example", "agent", None, None)
    cache = TokenCache(0.05)
    cache.put("digest", principal)
    assert cache.get("digest") == principal
    time.sleep(0.06)
    assert cache.get("digest") is None
    off = TokenCache(0)
    off.put("digest", principal)
    assert off.get("digest") is None
