"""Editor journeys in PySpur 0.1.18's UI against the real service: renaming a node, dropping each kind the
node palette offers, and running a workflow made from a dashboard template.

Each test fails on an uncaught page error or a failed `/api` call (`UI.done`) and leaves screenshots in
`.artifacts/browser/`.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, Response, expect

from tests.browser.conftest import UI
from tests.browser.test_journeys import greeting, open_editor, placed
from tests.builders import definition, input_node
from tests.conftest import reaches
from workflows import nodes

pytestmark = pytest.mark.e2e

# Every kind the palette lists: the catalogue minus its "Input/Output" group, which the UI leaves out of the
# palette (a workflow gets its input node when it is created, a loop its own input and output). Node type and
# the title the palette shows (the catalogue's display name).
PALETTE = [
    ("SingleLLMCallNode", "Single LLM Call"),
    ("AgentNode", "Agent"),
    ("BestOfNNode", "Best of N"),
    ("PythonFuncNode", "Python Function"),
    ("RouterNode", "Router"),
    ("CoalesceNode", "Coalesce"),
    ("MergeNode", "Merge"),
    ("StaticValueNode", "Static Value"),
    ("HumanInterventionNode", "HumanIntervention"),
    ("SubworkflowNode", "Subworkflow"),
    ("ForLoopNode", "ForLoopNode"),
]


def saves(page: Page, marker: str) -> Any:
    """Wait for the editor's autosave whose body holds `marker` (it saves about once a second regardless)."""
    return page.expect_response(
        lambda r: r.request.method == "PUT" and "/api/wf/" in r.url and marker in (r.request.post_data or "")
    )


async def ok(response: Response) -> None:
    assert response.status == 200, f"{response.request.method} {response.url} -> {await response.text()}"


def test_the_drop_cases_cover_every_kind_the_palette_offers() -> None:
    offered = {
        (kind["name"], kind["config"]["title"])
        for group, kinds in nodes.supported_types().items()
        if group != "Input/Output"
        for kind in kinds
    }
    assert offered == set(PALETTE)


async def test_renaming_a_node_title_autosaves_and_survives_a_reload(ui_page: UI) -> None:
    ui, page = ui_page, ui_page.page
    wf = await ui.workflow(greeting())
    await ui.login()
    await open_editor(ui, wf)
    greet = page.locator(".react-flow__node[data-id='greet']")
    await greet.locator("h3").click()  # the title turns into a field
    field = greet.locator("input")
    await field.fill("welcome")
    async with saves(page, '"title":"welcome"') as saved:
        await field.press("Enter")
    await ok(await saved.value)
    await page.reload()
    await expect(greet.locator("h3")).to_have_text("welcome")
    stored = (await ui.api.get(f"/api/wf/{wf}/")).json()["definition"]
    [renamed] = [n for n in stored["nodes"] if n["id"] == "greet"]
    assert renamed["title"] == "welcome"
    await ui.done()


async def test_dropping_every_kind_the_palette_offers_autosaves_and_survives_a_reload(ui_page: UI) -> None:
    # One journey for all kinds (one editor load, one reload) keeps this quick; each step names its kind.
    ui, page = ui_page, ui_page.page
    wf = await ui.workflow(placed(definition([input_node()], [])))
    await ui.login()
    await open_editor(ui, wf)
    canvas = page.locator(".react-flow__node")
    for node_type, label in PALETTE:
        await page.keyboard.press("Control+k")  # opens the node palette
        await page.locator("#node-search-input").fill(node_type)  # it searches by type and opens the group
        async with saves(page, f'"node_type":"{node_type}"') as saved:
            await page.locator(f"[data-node-panel] span[title='{label}']").click()
        await ok(await saved.value)
        # The editor titles the first node of a kind `<type>_1`.
        await expect(canvas.get_by_role("heading", name=f"{node_type}_1", exact=True)).to_be_visible()
    await ui.shot("dropped")
    drawn = sorted(await canvas.evaluate_all("els => els.map(e => e.dataset.id)"))
    # The reloaded editor reads the stored draft back and saves it again at once: both must work.
    async with saves(page, f'"node_type":"{PALETTE[-1][0]}"') as resaved:
        await page.reload()
    await ok(await resaved.value)
    for node_type, _ in PALETTE:
        await expect(canvas.get_by_role("heading", name=f"{node_type}_1", exact=True)).to_be_visible()
    assert sorted(await canvas.evaluate_all("els => els.map(e => e.dataset.id)")) == drawn
    stored = (await ui.api.get(f"/api/wf/{wf}/")).json()["definition"]
    # Everything the drops made (a loop's own input and output nodes too) is stored, under its title.
    assert sorted(n["id"] for n in stored["nodes"]) == drawn
    titles = {n["title"] for n in stored["nodes"]}
    assert {f"{node_type}_1" for node_type, _ in PALETTE} <= titles
    await ui.done()


TEMPLATES = [
    # name, the run's outputs for the template's last test-input row
    ("Number Router", {"label": "big even number"}),
    ("Running Total Loop", {"total": 25}),
]


@pytest.mark.parametrize(("name", "outputs"), TEMPLATES, ids=[n for n, _ in TEMPLATES])
async def test_a_template_instantiated_from_the_dashboard_runs_from_the_editor(
    ui_page: UI, name: str, outputs: dict[str, Any]
) -> None:
    ui, page = ui_page, ui_page.page
    await ui.login()
    await page.goto("/dashboard")
    card = (
        page.locator("div")
        .filter(has=page.get_by_role("heading", name=name, exact=True))
        .filter(has=page.get_by_role("button", name="Use Template"))
        .last
    )
    async with page.expect_response(lambda r: "/api/templates/instantiate/" in r.url) as made:
        await card.get_by_role("button", name="Use Template").click()
    await ok(await made.value)
    wf = (await (await made.value).json())["id"]
    await expect(page).to_have_url(re.compile(f"/workflows/{wf}$"))
    await expect(page.locator(".react-flow__node[data-id='output_node']")).to_be_visible()
    async with page.expect_response(lambda r: "/start_run/" in r.url) as started:
        # Runs the selected test-input row; none is selected yet, and then the UI takes the last one.
        await page.keyboard.press("Control+Enter")
    await ok(await started.value)
    run_id = (await (await started.value).json())["id"]
    output = page.locator(".react-flow__node[data-id='output_node']")
    for value in outputs.values():
        await expect(output).to_contain_text(str(value))
    run = await reaches(ui.api, run_id, "COMPLETED")
    assert run["outputs"]["output_node"] == outputs
    await ui.done()
