"""Key management for an organisation's administrators."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request

from app.auth import repository, service
from app.auth.deps import Authenticated, KeyManager
from app.auth.key_cache import KeyCache
from app.auth.route import AuthenticatedRoute
from app.auth.schemas import Caller, KeyCreate, KeyCreated, KeyList, KeyOut
from app.core.deps import ReadSessionDep, SessionDep, mark_resource
from app.core.openapi import problem_responses

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=AuthenticatedRoute)


@router.post("", status_code=201, response_model=KeyCreated, summary="Create an API key")
def create_key(body: KeyCreate, principal: KeyManager, session: SessionDep, request: Request) -> KeyCreated:
    key, plaintext = service.create_key(session, principal.organisation_id, body.role.value, body.name)
    mark_resource(request, key.id)
    return KeyCreated(**KeyOut.model_validate(key).model_dump(), key=plaintext)


@router.get("", response_model=KeyList, summary="List the organisation's API keys")
def list_keys(principal: KeyManager, session: ReadSessionDep) -> KeyList:
    keys = repository.list_keys(session, principal.organisation_id)
    return KeyList(items=[KeyOut.model_validate(k) for k in keys])


@router.get("/me", response_model=Caller, summary="The key making this call: its name, role and permissions")
def who_am_i(principal: Authenticated, session: ReadSessionDep) -> Caller:
    key = repository.KEYS.get_or_404(session, principal.organisation_id, principal.key_id)
    return Caller.of(principal.key_id, key.name, principal.role)


@router.delete("/{key_id}", response_model=KeyOut, summary="Revoke an API key", responses=problem_responses(404))
def revoke_key(
    key_id: str, principal: KeyManager, session: SessionDep, request: Request, background: BackgroundTasks
) -> KeyOut:
    """Revoke a key: refused at once by this server process, and by every other within
    ``FAIRAUDIT_KEY_CACHE_SECONDS`` (each process reuses a valid key's check at most that long)."""
    mark_resource(request, key_id)
    revoked = KeyOut.model_validate(service.revoke_key(session, principal.organisation_id, key_id))
    cache: KeyCache = request.app.state.key_cache
    cache.forget(key_id)
    background.add_task(cache.forget, key_id)  # after the commit: a check made in between is dropped too
    return revoked
