"""What a person does in the two UIs, as Playwright steps in Debian's Chromium (no browser download):
each step waits for the page content it needs and returns what it read, so tests assert on content.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
TIMEOUT_MS = 60_000


def chromium_path() -> str | None:
    return next((path for path in CHROMIUM_CANDIDATES if Path(path).exists()), None) or shutil.which("chromium")


@contextmanager
def browser_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("no Chromium: install Debian's package with `apt-get install -y chromium`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


@contextmanager
def fresh_page(page: Any) -> Iterator[Any]:
    """A page of a new browser context next to `page`'s: no cookies, no local storage (a browser
    that has never been to the site)."""
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        opened = context.new_page()
        opened.set_default_timeout(TIMEOUT_MS)
        yield opened
    finally:
        context.close()


# --------------------------------------------------------------------------------------- Airflow
def airflow_login(page: Any, url: str, user: str, password: str) -> None:
    page.goto(f"{url}/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda address: "/auth/login" not in address)


def open_trigger_form(page: Any, url: str, dag_id: str) -> Any:
    page.goto(f"{url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for()
    dialog.locator("#element_world_sizes .view-lines").wait_for()
    return dialog


def fill_trigger_form(page: Any, dialog: Any, *, preset: str, world_sizes: list[int]) -> None:
    """Pick the preset in its select and type the worker counts into their JSON editor."""
    dialog.locator("#element_preset").get_by_role("combobox").click()
    page.get_by_role("option", name=preset, exact=True).click()
    editor = dialog.locator("#element_world_sizes .view-lines")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(json.dumps(world_sizes))  # replaces the selection (a Delete first re-fills it)
    page.keyboard.press("Control+Shift+End")  # the editor's auto-closed bracket, after the cursor
    page.keyboard.press("Delete")
    typed = editor.inner_text().replace("\u00a0", " ").strip()
    if json.loads(typed) != world_sizes:
        raise AssertionError(f"the worker counts editor holds {typed!r}, not {world_sizes}")


def submit_trigger_form(dialog: Any) -> None:
    button = dialog.get_by_role("button", name="Trigger")
    if not button.is_enabled():
        raise AssertionError(f"the form's Trigger button is disabled: {dialog.inner_text()[-600:]}")
    button.click()
    dialog.wait_for(state="hidden")


def run_state_in_grid(page: Any, url: str, dag_id: str, run_id: str, first_task: str) -> str:
    """The run's page (reached from the grid view) as a person reads it, once the grid's task rows
    (`first_task` among them) have rendered: the state badge and the rows' text."""
    page.goto(f"{url}/dags/{dag_id}/runs/{urllib.parse.quote(run_id)}")
    page.get_by_text(run_id).first.wait_for()
    page.get_by_text(first_task, exact=True).first.wait_for()  # the grid fills in after the header
    return str(page.inner_text("main") if page.locator("main").count() else page.inner_text("body"))


# ---------------------------------------------------------------------------------------- MLflow
def training_view(page: Any, url: str, experiment_id: str) -> str:
    """The experiment's page as our links open it; returns the page's text once the runs table shows."""
    page.goto(f"{url}/#/experiments/{experiment_id}?workflowType=machine_learning")
    page.get_by_text("Run Name").first.wait_for()
    _close_assistant(page)
    return str(page.inner_text("body"))


def experiment_from_home(page: Any, url: str, experiment_name: str) -> str:
    """MLflow's home as a person first opens it, then a click on the experiment's name; the page's
    text once the experiment's page has rendered its main view."""
    page.goto(f"{url}/")
    page.get_by_role("link", name=experiment_name).first.click()
    page.wait_for_url("**/experiments/**")
    page.get_by_text("Run Name").or_(page.get_by_text("Token Usage")).first.wait_for()
    _close_assistant(page)
    return str(page.inner_text("body"))


def _close_assistant(page: Any) -> None:
    """MLflow 3.17 opens an assistant panel beside every page; it hides half of a screenshot."""
    close = page.locator("[data-component-id='mlflow.assistant.chat_panel.close']")
    if close.count() and close.first.is_visible():
        close.first.click()


def open_saved_view(page: Any, name: str) -> list[str]:
    """Pick the saved view `name` from the experiment page's "Views" menu; returns the runs table's
    column titles once the view shows."""
    page.get_by_role("button", name="Views").click()
    page.get_by_role("menuitem").filter(has_text=name).first.click()
    page.locator("[role=columnheader]", has_text="Metrics").first.wait_for()
    page.wait_for_timeout(500)  # the grid applies the view's columns and widths in a second pass
    return [title.strip() for title in page.locator("[role=columnheader]").all_inner_texts() if title.strip()]


def select_runs(page: Any, parent_name: str, run_names: list[str]) -> None:
    """In the runs table: unfold the parent run `parent_name` and tick the runs `run_names` beneath it."""
    parent = page.locator("[role=row]", has_text=parent_name).first
    parent.locator("[col-id='attributes.`Run Name`'] button").click()  # the unfold (+) button
    for name in run_names:
        row = page.locator("[role=row]", has_text=name).first
        row.wait_for()
        index = row.get_attribute("row-index")  # the checkbox sits in the same row of the pinned part
        page.locator(f"[role=row][row-index='{index}'] input.ag-checkbox-input").first.check()


def compare_selected(page: Any) -> str:
    """Press Compare over the ticked runs; returns the compare page's text once their details show."""
    page.get_by_role("button", name="Compare", exact=True).click()
    page.get_by_text("Run details").wait_for()
    _close_assistant(page)
    return str(page.inner_text("body"))


def _metric_link(page: Any, metric: str) -> Any:
    """`metric`'s name in the compare page's metrics table, scrolled to with the mouse wheel as a
    person would (the names and the values are two virtualized grids that scroll together)."""
    names = page.locator(".ReactVirtualized__Grid").filter(has=page.locator("a[title='Plot chart']")).first
    link = page.locator("a[title='Plot chart']", has_text=metric)
    for _ in range(60):
        names.scroll_into_view_if_needed()
        top = names.bounding_box()["y"]
        if link.count() and top <= link.first.bounding_box()["y"] <= top + names.bounding_box()["height"] - 20:
            return link.first  # rendered and inside the grid's window (the grid renders rows beyond it)
        left = names.bounding_box()["x"]
        values = next(grid for grid in page.locator(".ReactVirtualized__Grid").all()  # the one that scrolls
                      if abs(grid.bounding_box()["y"] - top) < 2 and grid.bounding_box()["x"] > left)
        box = values.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, 120)
        page.wait_for_timeout(150)
    raise AssertionError(f"metric {metric} is not in the compare view's metrics table")


def metric_chart(page: Any, metric: str) -> str:
    """From the compare page: `metric`'s chart of every compared run (per-epoch curves for a
    per-epoch metric) and its table of each run's values; the page's text."""
    _metric_link(page, metric).click()
    page.get_by_text("Completed Runs").wait_for()
    page.locator(".js-plotly-plot, svg.main-svg").first.wait_for()
    _close_assistant(page)
    return str(page.inner_text("body"))


def run_page(page: Any, url: str, experiment_id: str, run_id: str) -> str:
    page.goto(f"{url}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning")
    page.get_by_text("Description").first.wait_for()
    return str(page.inner_text("body"))


def artifact_image(page: Any, url: str, experiment_id: str, run_id: str, path: str) -> tuple[str, int]:
    """Opens the artifact in the run's artifact browser: the artifact path the page shows (through
    the server's proxy: `mlflow-artifacts:/...`) and the rendered image's natural width."""
    page.goto(f"{url}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/{path}?workflowType=machine_learning")
    shown = page.get_by_text("Path: mlflow-artifacts:").first
    shown.wait_for()
    image = page.locator("img[src^='blob:']").first  # the preview, fetched through the server
    image.wait_for()
    page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=image.element_handle())
    _close_assistant(page)
    return str(shown.inner_text()), int(image.evaluate("image => image.naturalWidth"))
