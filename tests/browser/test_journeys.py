"""PySpur 0.1.18's web UI, unmodified, in Chromium against the real service: the journeys a user makes.

Each test fails on an uncaught page error or a failed `/api` call (`UI.done`) and leaves screenshots in
`.artifacts/browser/`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.async_api import Error, Locator, Response, expect

from tests.browser.conftest import UI
from tests.builders import definition, input_node, link, node, output_node, python_node
from tests.conftest import reaches

pytestmark = pytest.mark.e2e


def placed(defn: dict[str, Any]) -> dict[str, Any]:
    """Give every node a position, as the editor does: it cannot draw a node without `coordinates`."""
    for i, n in enumerate(defn["nodes"]):
        n["coordinates"] = {"x": 100 + 320 * i, "y": 100}
    return defn


def greeting(ids: dict[str, str] | None = None) -> dict[str, Any]:
    """input (name: string) -> greet (Python) -> output, with one test-input row, as the editor stores it."""
    ids = ids or {}
    inp, greet, out = (ids.get(t, t) for t in ("input_node", "greet", "output_node"))
    nodes = [
        input_node({"name": "string"}, node_id=inp),
        # Code and output map name predecessors by title, as PySpur does.
        python_node(greet, "return {'g': 'hi ' + input_model.input_node.name}", {"g": "string"}),
        output_node({"g": "greet.g"}, node_id=out),
    ]
    for n in nodes:  # titles stay readable when ids are UUIDs, as for nodes made in the editor
        n["title"] = next(
            t for t, i in (("input_node", inp), ("greet", greet), ("output_node", out)) if i == n["id"]
        )
    defn = placed(definition(nodes, [link(inp, greet), link(greet, out)]))
    defn["test_inputs"] = [{"id": 1, "name": "Ada"}]
    return defn


def approval() -> dict[str, Any]:
    return placed(
        definition(
            [
                input_node(),
                node("approve", "HumanInterventionNode", message="Ship it?"),
                output_node({"x": "approve.input_node.x"}),
            ],
            [link("input_node", "approve"), link("approve", "output_node")],
        )
    )


async def open_editor(ui: UI, wf: str) -> None:
    """Open the editor and wait until it has loaded the graph (it saves once as soon as it has)."""
    saving = ui.page.expect_response(lambda r: r.request.method == "PUT" and f"/api/wf/{wf}/" in r.url)
    async with saving as saved:
        await ui.page.goto(f"/workflows/{wf}")
    assert (await saved.value).status == 200, await (await saved.value).text()
    await expect(ui.page.locator(".react-flow__node").first).to_be_visible()


async def test_login_page_signs_in_and_lands_where_the_user_was_going(ui_page: UI) -> None:
    ui, page = ui_page, ui_page.page
    await page.goto("/dashboard")
    await expect(page).to_have_url(re.compile(r"/login\?next=/dashboard$"))
    await ui.shot("login")
    await page.fill("#api_key", "not-a-key")
    await page.click("button[type=submit]")
    await expect(page.get_by_role("alert")).to_contain_text("not valid")
    await page.fill("#api_key", ui.tenant.key)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    [cookie] = [c for c in await ui.context.cookies() if c["name"] == "ks_uat"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    await ui.done()


async def test_dashboard_lists_the_tenants_workflows(ui_page: UI) -> None:
    ui, page = ui_page, ui_page.page
    names = [f"listed-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    for name in names:
        await ui.workflow(greeting(), name=name)
    await ui.login()
    await page.goto("/dashboard")
    for name in names:
        await expect(page.get_by_text(name, exact=True)).to_be_visible()
    await ui.done()


async def test_approval_panel_approves_one_paused_run_and_declines_another(ui_page: UI) -> None:
    ui, page = ui_page, ui_page.page
    wf = await ui.workflow(approval())
    runs = []
    for x in (1, 2):
        started = await ui.api.post(
            f"/api/wf/{wf}/start_run/", json={"initial_inputs": {"input_node": {"x": x}}}
        )
        runs.append(started.json()["id"])
    for run_id in runs:
        await reaches(ui.api, run_id, "PAUSED")
    approved, declined = runs
    await ui.login()
    await page.goto("/dashboard")

    def card(run_id: str) -> Any:
        return (
            page.locator("div", has_text=f"Run ID: {run_id}")
            .filter(has=page.get_by_role("button", name="Approve"))
            .last
        )

    await expect(card(approved)).to_contain_text("Ship it?")
    await ui.shot("paused")
    await card(approved).get_by_role("button", name="Approve").click()
    await expect(page.get_by_text(f"Run ID: {approved}")).to_have_count(0)
    await card(declined).get_by_role("button", name="Decline").click()
    await expect(page.get_by_text(f"Run ID: {declined}")).to_have_count(0)
    done = await reaches(ui.api, approved, "COMPLETED")
    assert done["outputs"]["output_node"] == {"x": 1}
    await reaches(ui.api, declined, "CANCELED")
    await ui.done()


async def test_editor_opens_a_workflow_with_finished_runs_without_a_page_error(ui_page: UI) -> None:
    ui, page = ui_page, ui_page.page
    wf = await ui.workflow(greeting())
    ok = await ui.api.post(f"/api/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"name": "Bo"}}})
    assert ok.status_code == 200, ok.text
    again = await ui.api.post(f"/api/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"name": "Di"}}})
    assert again.status_code == 200, again.text
    await ui.login()
    await open_editor(ui, wf)
    for title in ("input_node", "greet", "output_node"):
        await expect(page.locator(".react-flow__node", has_text=title).first).to_be_visible()
    await page.get_by_title("Run History - View previous workflow runs").click()
    await expect(page.get_by_text(re.compile("ago"))).not_to_have_count(0)
    await ui.done()


async def test_a_workflow_saved_through_the_api_without_positions_opens_in_the_editor(ui_page: UI) -> None:
    ui, page = ui_page, ui_page.page
    unplaced = greeting()
    for n in unplaced["nodes"]:
        del n["coordinates"]
    wf = await ui.workflow(unplaced)
    await ui.login()
    await open_editor(ui, wf)
    for title in ("input_node", "greet", "output_node"):
        await expect(page.locator(".react-flow__node", has_text=title).first).to_be_visible()
    await ui.done()


async def test_a_run_started_from_the_editor_completes_and_the_nodes_show_their_outputs(ui_page: UI) -> None:
    ui, page = ui_page, ui_page.page
    wf = await ui.workflow(greeting())
    await ui.login()
    await open_editor(ui, wf)
    async with page.expect_response(lambda r: "/start_run/" in r.url) as started:
        await page.keyboard.press("Control+Enter")
    assert (await started.value).status == 200
    run_id = (await (await started.value).json())["id"]
    await expect(page.locator(".react-flow__node", has_text="greet").first).to_contain_text("hi Ada")
    await expect(page.locator(".react-flow__node", has_text="output_node").first).to_contain_text("hi Ada")
    run = await reaches(ui.api, run_id, "COMPLETED")
    assert run["outputs"]["output_node"] == {"g": "hi Ada"}
    await ui.done()


async def test_runs_page_lists_runs_and_the_trace_page_shows_node_outputs(ui_page: UI) -> None:
    ui, page = ui_page, ui_page.page
    wf = await ui.workflow(greeting())
    ran = await ui.api.post(f"/api/wf/{wf}/run/", json={"initial_inputs": {"input_node": {"name": "Cy"}}})
    assert ran.status_code == 200, ran.text
    [run] = (await ui.api.get(f"/api/wf/{wf}/runs/")).json()
    await ui.login()
    await page.goto(f"/runs/{wf}")
    await expect(page.get_by_text(run["id"]).first).to_be_visible()
    await ui.shot("runs")
    await page.goto(f"/trace/{run['id']}")
    await expect(page.get_by_text("hi Cy").first).to_be_visible()
    await ui.done()


async def test_partial_run_of_one_node_shows_its_output(ui_page: UI) -> None:
    wf = await ui_page.workflow(greeting())
    await _partial_run(ui_page, wf)


async def test_partial_run_of_an_editor_made_node_with_a_uuid_id(ui_page: UI) -> None:
    ui = ui_page
    ids = {t: str(uuid.uuid4()) for t in ("input_node", "greet", "output_node")}
    wf = await ui.workflow(greeting(ids))
    await _partial_run(ui, wf)


async def _partial_run(ui: UI, wf: str) -> None:
    page = ui.page
    await ui.login()
    await open_editor(ui, wf)
    greet = page.locator(".react-flow__node", has_text="greet").first
    await greet.click()
    async with page.expect_response(lambda r: "/run_partial/" in r.url) as partial:
        # The node toolbar's ▶ (its icon is fetched from an icon host, unreachable here; the button is not).
        await greet.locator("button[class*='hover:bg-primary/20']").first.click()
    assert (await partial.value).status == 200, await (await partial.value).text()
    await expect(greet).to_contain_text("hi Ada")
    await ui.done()


async def test_a_run_from_the_editor_with_typed_test_inputs_completes(ui_page: UI) -> None:
    ui, page = ui_page, ui_page.page
    defn = placed(
        definition(
            [
                input_node({"x": "integer"}),
                python_node("double", "return {'y': input_model.input_node.x * 2}", {"y": "integer"}),
                output_node({"y": "double.y"}),
            ],
            [link("input_node", "double"), link("double", "output_node")],
        )
    )
    defn["test_inputs"] = [{"id": 1, "x": "21"}]
    wf = await ui.workflow(defn)
    await ui.login()
    await open_editor(ui, wf)
    async with page.expect_response(lambda r: "/start_run/" in r.url) as started:
        await page.keyboard.press("Control+Enter")
    assert (await started.value).status == 200, await (await started.value).text()
    await expect(page.locator(".react-flow__node", has_text="double").first).to_contain_text("42")
    await ui.done()


async def test_moving_a_node_in_a_draft_with_a_fresh_output_node_autosaves_and_survives_a_reload(
    ui_page: UI,
) -> None:
    ui, page = ui_page, ui_page.page
    defn = greeting()
    defn["nodes"].append(
        {"id": "out2", "title": "OutputNode_1", "node_type": "OutputNode", "config": {"output_map": None}}
    )
    defn["nodes"][-1]["coordinates"] = {"x": 500, "y": 400}
    wf = await ui.workflow(defn)  # an editor-made draft: the API must store it as it is
    await ui.login()
    await page.goto(f"/workflows/{wf}")
    greet = page.locator(".react-flow__node", has_text="greet").first
    box = await greet.bounding_box()
    assert box is not None
    async with page.expect_response(lambda r: r.request.method == "PUT" and r.status == 200):
        await page.mouse.move(box["x"] + 40, box["y"] + 15)
        await page.mouse.down()
        await page.mouse.move(box["x"] + 40, box["y"] + 315, steps=10)
        await page.mouse.up()
    await page.reload()
    stored = (await ui.api.get(f"/api/wf/{wf}/")).json()["definition"]
    [moved] = [n for n in stored["nodes"] if n["id"] == "greet"]
    assert moved["coordinates"]["y"] > 250
    await ui.done()


def masked(key: str) -> str:
    """PySpur's mask of a secret: its first and last four characters."""
    return key[:4] + "*" * (len(key) - 8) + key[-4:]


async def body_text(response: Response) -> str:
    try:
        return await response.text()
    except Error:  # no body to read (a redirect, or evicted from the browser's cache)
        return ""


async def open_api_keys(ui: UI) -> Locator:
    """Settings -> API Keys -> AI Models (a collapsed accordion); the OpenAI key field."""
    page = ui.page
    await page.get_by_role("button", name="Settings", exact=True).click()
    await page.get_by_role("button", name="API Keys").click()
    await page.get_by_role("button", name=re.compile("AI Models")).click()
    # The field's placeholder is "Enter " + the provider parameter's description, lower-cased.
    return page.get_by_placeholder("Enter openai api key", exact=True)


async def test_settings_dialog_stores_a_provider_key_that_no_response_returns(ui_page: UI) -> None:
    ui, page = ui_page, ui_page.page
    old, secret = f"sk-old-{uuid.uuid4().hex}", f"sk-test-{uuid.uuid4().hex}"
    # A workflow keeps the first-visit welcome dialog away; a stored key shows when the dialog's keys loaded.
    await ui.workflow(greeting())
    seeded = await ui.api.post("/api/env-mgmt/", json={"name": "OPENAI_API_KEY", "value": old})
    assert seeded.status_code == 200, seeded.text
    responses: list[Response] = []
    page.on("response", lambda r: responses.append(r))
    await ui.login()
    await page.goto("/dashboard")

    field = await open_api_keys(ui)
    await expect(field).to_have_value(masked(old))
    await field.fill(secret)
    async with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/api/env-mgmt/")
    ) as saved:
        await page.get_by_role("button", name=re.compile("save changes", re.I)).click()
    posted = await saved.value
    assert posted.status == 200
    assert posted.request.post_data_json == {"name": "OPENAI_API_KEY", "value": secret}
    await expect(field).to_have_value(masked(secret))  # the dialog reloads the stored keys

    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_have_count(0)
    field = await open_api_keys(ui)
    await expect(field).to_have_value(masked(secret))

    got = await ui.api.get("/api/env-mgmt/OPENAI_API_KEY")
    assert got.json() == {"name": "OPENAI_API_KEY", "value": masked(secret)}
    bodies = [await body_text(r) for r in responses if "/api/" in r.url]
    assert bodies and not [b for b in bodies if secret in b or old in b]
    await ui.done()
    await ui.api.delete("/api/env-mgmt/OPENAI_API_KEY")  # the session's tenant is shared by the journeys


async def test_a_template_instantiates_and_opens_in_the_editor(ui_page: UI) -> None:
    ui, page = ui_page, ui_page.page
    await ui.login()
    await page.goto("/dashboard")
    templates = (await ui.api.get("/api/templates/")).json()
    assert templates, "no templates listed"
    async with page.expect_response(lambda r: "/api/templates/instantiate/" in r.url) as made:
        await page.get_by_text(templates[0]["name"]).first.click()
        await page.get_by_role("button", name=re.compile("use|instantiate", re.I)).first.click()
    assert (await made.value).status == 200
    await expect(page).to_have_url(re.compile(r"/workflows/"))
    await expect(page.locator(".react-flow__node").first).to_be_visible()
    await ui.done()
