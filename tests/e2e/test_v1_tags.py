"""v1 tags through the unmodified ksapi client: tag CRUD, tags on path parts (set, remove, inherited), and
the run and definition list filters, where a tag on a folder holds for everything below it and an
excluded tag wins over an included one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import ksapi
import pytest
from ksapi.exceptions import ConflictException, NotFoundException

from tests.conftest import Stack, Tenant, make_tenant
from tests.e2e.v1_client import V1, connect, new_definition

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def own_tenant(stack: Stack) -> Tenant:
    """A tenant of this module's own: the tenant-wide lists here see only what these tests made."""
    return await make_tenant(stack.database_url)


@pytest.fixture
def v1(live_api: str, own_tenant: Tenant) -> V1:
    return connect(live_api, own_tenant.key)


def new_tag(v1: V1, **extra: Any) -> Any:
    return v1.api(ksapi.TagsApi).create_tag(ksapi.CreateTagRequest(name=f"t-{uuid.uuid4().hex[:8]}", **extra))


def folder(v1: V1, parent: uuid.UUID) -> Any:
    return v1.folders.create_folder(
        ksapi.CreateFolderRequest(name=f"f-{uuid.uuid4().hex[:8]}", parent_path_part_id=parent)
    )


def set_tags(v1: V1, path_part_id: uuid.UUID, *tags: Any) -> list[str]:
    """Set the tags (TagResponses, or bare tag ids) of a path part; their names."""
    ids = [t if isinstance(t, uuid.UUID) else t.id for t in tags]
    got = v1.api(ksapi.PathPartsApi).set_path_part_tags(path_part_id, ksapi.BulkTagRequest(tag_ids=ids))
    return sorted(t.name for t in got.tags)


@dataclass
class Tree:
    """root / a (red) / b / d1 (blue) -> r1;  root / a / d2 -> r2;  root / d3 -> r3 (red)."""

    red: Any
    blue: Any
    defs: dict[str, Any]
    runs: dict[str, Any]


@pytest.fixture
def tree(v1: V1, root: uuid.UUID) -> Tree:
    red, blue = new_tag(v1, color="ff0000"), new_tag(v1)
    a = folder(v1, root)
    b = folder(v1, a.path_part_id)
    defs = {"d1": new_definition(v1, b.path_part_id), "d2": new_definition(v1, a.path_part_id)}
    defs["d3"] = new_definition(v1, root)
    runs = {f"r{i}": v1.defs.create_workflow_run(defs[f"d{i}"].id) for i in (1, 2, 3)}
    set_tags(v1, a.path_part_id, red)
    set_tags(v1, defs["d1"].path_part_id, blue)
    set_tags(v1, runs["r3"].path_part_id, red)
    return Tree(red, blue, defs, runs)


def definitions(v1: V1, tree: Tree, **filters: Any) -> set[str]:
    page = v1.defs.list_workflow_definitions(limit=100, **filters)
    ids = {d.id for d in page.items}
    return {name for name, d in tree.defs.items() if d.id in ids}


def runs(v1: V1, tree: Tree, **filters: Any) -> set[str]:
    page = v1.runs.list_workflow_runs_for_tenant(
        limit=100, sort_by=ksapi.WorkflowRunOrder.CREATED_AT, **filters
    )
    ids = {r.id for r in page.items}
    return {name for name, r in tree.runs.items() if r.id in ids}


def test_a_folder_tag_holds_for_the_definitions_below_it_and_exclude_wins(v1: V1, tree: Tree) -> None:
    red, blue = tree.red.id, tree.blue.id
    assert definitions(v1, tree, include_tag_ids=[red]) == {"d1", "d2"}
    assert definitions(v1, tree, include_tag_ids=[blue]) == {"d1"}
    assert definitions(v1, tree, include_tag_ids=[red, blue]) == {"d1", "d2"}
    assert definitions(v1, tree, include_tag_ids=[red], exclude_tag_ids=[blue]) == {"d2"}
    assert definitions(v1, tree, exclude_tag_ids=[red]) == {"d3"}
    assert definitions(v1, tree) == {"d1", "d2", "d3"}


def test_runs_inherit_their_definitions_tags_and_exclude_wins(v1: V1, tree: Tree) -> None:
    red, blue = tree.red.id, tree.blue.id
    assert runs(v1, tree, include_tag_ids=[red]) == {"r1", "r2", "r3"}
    assert runs(v1, tree, include_tag_ids=[blue]) == {"r1"}
    assert runs(v1, tree, include_tag_ids=[red], exclude_tag_ids=[blue]) == {"r2", "r3"}
    assert runs(v1, tree, exclude_tag_ids=[red]) == set()
    assert runs(v1, tree, exclude_tag_ids=[blue]) == {"r2", "r3"}
    per_definition = v1.defs.list_workflow_runs(tree.defs["d1"].id)
    assert [r.id for r in per_definition.items] == [tree.runs["r1"].id]


def test_path_part_tags_are_set_removed_and_read_with_their_ancestors(v1: V1, tree: Tree) -> None:
    parts = v1.api(ksapi.PathPartsApi)
    d1 = tree.defs["d1"].path_part_id
    assert [t.name for t in parts.get_path_part_tags(d1).tags] == [tree.blue.name]
    inherited = parts.get_path_part_tags(d1, include_inherited=True).tags
    assert sorted(t.name for t in inherited) == sorted([tree.red.name, tree.blue.name])
    run_tags = parts.get_path_part_tags(tree.runs["r1"].path_part_id, include_inherited=True).tags
    assert sorted(t.name for t in run_tags) == sorted([tree.red.name, tree.blue.name])

    assert set_tags(v1, d1, tree.red, tree.blue) == sorted([tree.red.name, tree.blue.name])
    left = parts.bulk_remove_path_part_tags(d1, ksapi.BulkTagRequest(tag_ids=[tree.blue.id, uuid.uuid4()]))
    assert [t.name for t in left.tags] == [tree.red.name]
    assert set_tags(v1, d1) == []
    assert definitions(v1, tree, include_tag_ids=[tree.blue.id]) == set()


def test_tag_crud_refuses_taken_names_and_unknown_tags(v1: V1, root: uuid.UUID) -> None:
    api = v1.api(ksapi.TagsApi)
    tag = new_tag(v1, color="00ff00", description="green things")
    assert (tag.color, tag.description) == ("00FF00", "green things")
    with pytest.raises(ConflictException):
        api.create_tag(ksapi.CreateTagRequest(name=tag.name.upper()))
    assert api.get_tag(tag.id).name == tag.name
    assert [t.id for t in api.list_tags(name_like=tag.name[2:]).items] == [tag.id]
    renamed = api.update_tag(tag.id, ksapi.UpdateTagRequest(name=tag.name + "x", description=""))
    assert (renamed.name, renamed.description, renamed.color) == (tag.name + "x", None, "00FF00")

    d = new_definition(v1, root)
    with pytest.raises(NotFoundException) as unknown:
        set_tags(v1, d.path_part_id, tag, uuid.uuid4())
    assert "No such tag" in (unknown.value.body or "")
    set_tags(v1, d.path_part_id, tag)
    api.delete_tag(tag.id)
    with pytest.raises(NotFoundException):
        api.get_tag(tag.id)
    assert v1.api(ksapi.PathPartsApi).get_path_part_tags(d.path_part_id).tags == []


def test_another_tenant_cannot_see_or_use_the_tags_or_tag_the_path_parts(
    v1: V1, tree: Tree, live_api: str, other_tenant: Tenant
) -> None:
    theirs = connect(live_api, other_tenant.key)
    with pytest.raises(NotFoundException):
        theirs.api(ksapi.TagsApi).get_tag(tree.red.id)
    with pytest.raises(NotFoundException):
        theirs.api(ksapi.PathPartsApi).get_path_part_tags(tree.defs["d1"].path_part_id)
    their_def = new_definition(theirs, theirs.folders.list_folders().items[0].path_part_id)
    with pytest.raises(NotFoundException):
        set_tags(theirs, their_def.path_part_id, tree.red)
    assert tree.red.id not in {t.id for t in theirs.api(ksapi.TagsApi).list_tags(limit=100).items}
