"""Command-line administration: create tenants, users and API keys, repair runs (`python admin.py --help`)."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import timedelta

from activities import reconciler
from db import accounts
from db.migrate import upgrade_async
from db.session import make_engine, make_session_factory
from settings import get_settings
from temporal_client import connect


async def _reconcile(args: argparse.Namespace) -> None:
    """The reconciler on demand: the given runs, or every open run, checked against Temporal now."""
    settings = get_settings()
    engine = make_engine(settings.effective_database_url, pool_size=1)
    try:
        sessions = make_session_factory(engine)
        client = await connect(settings)
        if args.run_ids:
            for run_id in args.run_ids:
                done = await reconciler.repair(sessions, client, uuid.UUID(run_id))
                print(f"{run_id} {'repaired' if done else 'consistent (or still running)'}")
        else:
            repaired = await reconciler.reconcile_once(
                sessions, client, grace=timedelta(seconds=args.grace_seconds), limit=args.limit
            )
            print(f"repaired {repaired} run(s)")
    finally:
        await engine.dispose()


async def _run(args: argparse.Namespace) -> None:
    if args.command == "reconcile":
        await _reconcile(args)
        return
    url = get_settings().effective_database_url
    await upgrade_async(url)
    engine = make_engine(url, pool_size=1)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            if args.command == "create-tenant":
                tenant = await accounts.create_tenant(session, args.name)
                user = await accounts.create_user(session, tenant.id, args.owner_email, accounts.Role.OWNER)
                _, key = await accounts.create_api_key(session, user, "owner key")
                print(f"tenant {tenant.id}\nowner  {user.id} <{user.email}>\nkey    {key}")
            elif args.command == "create-user":
                found_tenant = await accounts.find_tenant(session, args.tenant)
                if found_tenant is None:
                    raise SystemExit(f"no tenant named {args.tenant!r}")
                user = await accounts.create_user(
                    session, found_tenant.id, args.email, accounts.Role(args.role)
                )
                _, key = await accounts.create_api_key(session, user, "initial key")
                print(f"user {user.id} <{user.email}> role {user.role}\nkey  {key}")
            elif args.command == "create-key":
                found = await accounts.user(session, args.user_id)
                if found is None:
                    raise SystemExit(f"no user {args.user_id}")
                _, key = await accounts.create_api_key(session, found, args.name)
                print(key)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Create tenants, users and API keys (keys are printed once)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("create-tenant", help="a tenant with an OWNER user and that user's API key")
    t.add_argument("name")
    t.add_argument("--owner-email", required=True)
    u = sub.add_parser("create-user", help="a user in an existing tenant, with an API key")
    u.add_argument("tenant", help="tenant name")
    u.add_argument("email")
    u.add_argument("--role", choices=[r.value for r in accounts.Role], default="USER")
    k = sub.add_parser("create-key", help="another API key for a user")
    k.add_argument("user_id", type=uuid.UUID)
    k.add_argument("--name", default="")
    r = sub.add_parser("reconcile", help="repair runs whose execution closed without their terminal write")
    r.add_argument("run_ids", nargs="*", help="only these runs (default: every open run)")
    r.add_argument("--grace-seconds", type=float, default=0.0, help="skip runs started more recently")
    r.add_argument("--limit", type=int, default=10000, help="open runs checked at most")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
