"""Spur templates (PySpur's `/templates/`): one JSON file per template in `core/template_files/`, in
PySpur's shape (`{"metadata": {name, description, features}, "definition": {...}}`).

A template is listed only when this service can run every node kind in it, so a template for a kind
still to come (an LLM node) can be dropped in now and appears once the kind is in the catalogue.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from core.stored_workflows import create_workflow, prepare_definition
from db.accounts import Principal
from db.models import Workflow
from errors import InvalidDefinition, NotFound
from workflows import graph, nodes
from workflows.definition import WorkflowDefinition

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).parent / "template_files"


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    features: list[str]
    file_name: str
    definition: WorkflowDefinition


def _load(path: Path) -> Template | None:
    """The template in `path`, or None (logged) when it is malformed or needs a kind this service lacks."""
    try:
        raw = json.loads(path.read_text())
        meta = raw.get("metadata") or {}
        defn = WorkflowDefinition.model_validate(raw.get("definition") or {})
        graph.check_shape(defn)
    except (OSError, ValueError, AttributeError, ValidationError, InvalidDefinition) as err:
        log.warning("Template %s is not usable: %s", path.name, err)
        return None
    if any(node.node_type not in nodes.NODE_TYPES_IMPLEMENTED for node in defn.nodes):
        return None
    return Template(
        name=str(meta.get("name") or path.stem),
        description=str(meta.get("description") or ""),
        features=[str(f) for f in meta.get("features") or []],
        file_name=path.name,
        definition=defn,
    )


def available(directory: Path = TEMPLATE_DIR) -> list[Template]:
    """The templates this service can run, by file name."""
    found = (_load(path) for path in sorted(directory.glob("*.json")))
    return [t for t in found if t is not None]


async def instantiate(
    session: AsyncSession, who: Principal, file_name: str, directory: Path = TEMPLATE_DIR
) -> Workflow:
    """A new workflow of the tenant from the template named by `file_name` (its name made unique).

    Raises:
        NotFound: no listed template has that file name.
    """
    # Matched against the listing, never joined onto a path: a file name cannot reach outside it.
    template = next((t for t in available(directory) if t.file_name == file_name), None)
    if template is None:
        raise NotFound("Template not found")
    definition = prepare_definition(template.definition)
    return await create_workflow(session, who, template.name, template.description, definition)
