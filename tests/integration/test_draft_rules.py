"""Draft rules at the service level (PostgreSQL, no HTTP): a draft is stored with its problems, the
problems of the workflows it runs are reported on it, and a run check writes nothing when one fails."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import stored_workflows
from core.workflow_versions import resolve_subworkflows
from db.accounts import Principal, Role
from db.models import WorkflowVersion
from db.session import make_engine, make_session_factory
from errors import InvalidDefinition
from tests.builders import definition, input_node, link, node, output_node, python_node
from tests.conftest import Stack, make_tenant
from workflows.definition import WorkflowDefinition

pytestmark = pytest.mark.integration


@pytest.fixture
async def session(stack: Stack) -> AsyncIterator[AsyncSession]:
    engine = make_engine(stack.database_url, pool_size=1)
    try:
        async with make_session_factory(engine)() as s:
            yield s
    finally:
        await engine.dispose()


@pytest.fixture
async def owner(stack: Stack) -> Principal:
    t = await make_tenant(stack.database_url)
    return Principal(t.tenant_id, t.user_id, Role.OWNER)


def shout() -> dict[str, Any]:
    return definition(
        [
            input_node({"text": "string"}),
            python_node("upper", 'return {"y": input_model.input_node.text.upper()}', {"y": "string"}),
            output_node({"shout": "upper.y"}),
        ],
        [link("input_node", "upper"), link("upper", "output_node")],
    )


def calls(workflow_id: str) -> dict[str, Any]:
    return definition(
        [
            input_node({"text": "string"}),
            node("sub", "SubworkflowNode", workflow_id=workflow_id, input_map=None),
            output_node({"result": "sub.shout"}),
        ],
        [link("input_node", "sub"), link("sub", "output_node")],
    )


async def save(session: AsyncSession, who: Principal, raw: dict[str, Any]) -> Any:
    stored = stored_workflows.prepare_definition(WorkflowDefinition.model_validate(raw))
    wf = await stored_workflows.create_workflow(session, who, f"w-{uuid.uuid4().hex[:6]}", "", stored)
    await session.commit()
    return wf


async def versions(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(WorkflowVersion)) or 0)


async def test_a_subworkflow_that_is_a_draft_is_a_problem_of_its_caller_and_pins_nothing(
    session: AsyncSession, owner: Principal
) -> None:
    child_raw = shout()
    child_raw["nodes"].append(node("loose", "StaticValueNode", values=None))
    child = await save(session, owner, child_raw)
    sibling = await save(session, owner, shout())
    parent_raw = calls(str(sibling.id))
    parent_raw["nodes"].append(node("sub2", "SubworkflowNode", workflow_id=str(child.id)))
    parent = await save(session, owner, parent_raw)
    problems = await stored_workflows.definition_problems(session, parent)
    assert [p.node_id for p in problems] == ["sub2"]
    assert "loose" in problems[0].detail and "values" in problems[0].detail
    before = await versions(session)
    with pytest.raises(InvalidDefinition, match="loose"):
        await resolve_subworkflows(
            session, owner.tenant_id, WorkflowDefinition.model_validate(parent.definition), parent, pin=True
        )
    await session.commit()
    assert await versions(session) == before  # the sibling was reachable, yet no version was pinned


async def test_a_subworkflow_named_by_a_half_typed_id_is_stored_and_reported(
    session: AsyncSession, owner: Principal
) -> None:
    wf = await save(session, owner, calls("3fa85f64"))
    problems = await stored_workflows.definition_problems(session, wf)
    assert [(p.node_id, p.detail) for p in problems] == [
        ("sub", "Node 'sub' (SubworkflowNode): workflow '3fa85f64' not found")
    ]


async def test_a_runnable_graph_pins_each_reachable_workflow_once(
    session: AsyncSession, owner: Principal
) -> None:
    child = await save(session, owner, shout())
    parent = await save(session, owner, calls(str(child.id)))
    assert await stored_workflows.definition_problems(session, parent) == []
    pinned = await resolve_subworkflows(
        session, owner.tenant_id, WorkflowDefinition.model_validate(parent.definition), parent, pin=True
    )
    assert list(pinned) == [str(child.id)]
    assert pinned[str(child.id)].version_id is not None
