"""PySpur's `/env-mgmt/` (the settings dialog): the calling tenant's LLM provider keys, masked on the
way out; setting or deleting one needs an OWNER or ADMIN. `/env-mgmt/anon-data/` answers "telemetry
disabled", so the UI never starts PostHog."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import PrincipalDep, SessionDep, SettingsDep
from core import llm_egress, provider_keys
from core.access import is_admin
from errors import Forbidden

router = APIRouter(prefix="/env-mgmt", tags=["env-mgmt"])


class APIKey(BaseModel):
    name: str = Field(max_length=100)
    value: str | None = None


def _ensure_admin(who: PrincipalDep) -> None:
    if not is_admin(who):
        raise Forbidden("Only an owner or admin may change the tenant's provider keys")


@router.get("/anon-data/")
async def anon_data(_: PrincipalDep) -> bool:
    # PySpur: true means "anonymous telemetry disabled"; this service sends none.
    return True


@router.get("/providers")
async def providers(_: PrincipalDep) -> list[dict[str, Any]]:
    return [
        {**asdict(p), "category": "llm", "parameters": [asdict(x) for x in p.parameters]}
        for p in provider_keys.PROVIDERS
    ]


@router.get("/")
async def list_keys(_: PrincipalDep) -> list[str]:
    return list(provider_keys.PARAMS)


@router.get("/{name}")
async def get_key(name: str, who: PrincipalDep, session: SessionDep, settings: SettingsDep) -> APIKey:
    value = await provider_keys.masked(session, provider_keys.cipher(settings), who.tenant_id, name)
    return APIKey(name=name, value=value)


@router.post("/")
async def set_key(
    body: APIKey, who: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> dict[str, str]:
    _ensure_admin(who)
    await provider_keys.put(
        session,
        provider_keys.cipher(settings),
        who.tenant_id,
        body.name,
        body.value,
        llm_egress.policy(settings),
    )
    return {"message": f"Key '{body.name}' set successfully"}


@router.delete("/{name}")
async def delete_key(name: str, who: PrincipalDep, session: SessionDep) -> dict[str, str]:
    _ensure_admin(who)
    await provider_keys.drop(session, who.tenant_id, name)
    return {"message": f"Key '{name}' deleted successfully"}
