"""What the v1 surface does not model is refused with a 4xx naming it, never accepted and dropped; upload
tags are kept."""

from __future__ import annotations

import uuid

import ksapi
import pytest
from ksapi.exceptions import BadRequestException, NotFoundException

from tests.e2e.v1_client import V1, new_definition

pytestmark = pytest.mark.e2e


def test_an_upload_with_tag_ids_is_tagged(v1: V1, root: uuid.UUID) -> None:
    tags = ksapi.TagsApi(v1.client)
    one, two = (tags.create_tag(ksapi.CreateTagRequest(name=f"t-{uuid.uuid4().hex[:8]}")) for _ in range(2))
    made = v1.docs.ingest_document(file=("a.txt", b"a"), path_part_id=root, tag_ids=[one.id, two.id])
    doc = v1.docs.get_document(made.document_id)
    got = ksapi.PathPartsApi(v1.client).get_path_part_tags(doc.path_part_id).tags
    assert {t.id for t in got} == {one.id, two.id}
    with pytest.raises(NotFoundException) as unknown:
        v1.docs.ingest_document(file=("b.txt", b"b"), path_part_id=root, tag_ids=[uuid.uuid4()])
    assert "No such tag" in (unknown.value.body or "")


def test_upload_options_that_are_not_modelled_are_refused_by_name(v1: V1, root: uuid.UUID) -> None:
    with pytest.raises(BadRequestException) as refused:
        v1.docs.ingest_document(
            file=("c.txt", b"c"),
            path_part_id=root,
            ingestion_mode=ksapi.IngestionMode.HIGH_ACCURACY,
            page_dpi=96,
        )
    body = refused.value.body or ""
    assert "ingestion_mode" in body and "page_dpi" in body


def test_a_definition_naming_skills_is_refused_on_create_and_update(v1: V1, root: uuid.UUID) -> None:
    with pytest.raises(BadRequestException) as refused:
        new_definition(v1, root, selected_skill_ids=[uuid.uuid4()])
    assert "no such skills" in (refused.value.body or "")
    d = new_definition(v1, root, selected_skill_ids=[])
    with pytest.raises(BadRequestException):
        v1.defs.update_workflow_definition(
            d.id,
            ksapi.UpdateWorkflowDefinitionRequest(
                name=d.name, is_active=True, approval_required=False, selected_skill_ids=[uuid.uuid4()]
            ),
        )
