"""MLflow's tracking server app with one default changed: the UI opens experiments in its
training-runs view ("Model training") for a browser that has not chosen a view yet.

MLflow 3.17's UI keeps the GenAI / Model training choice per browser (local storage key
`mlflow.workflowType_v1`), starts at GenAI, and ignores the experiment-kind tag while its workflow
switch is on, which that version hard-codes. So a person opening MLflow's home for the first time
and clicking a benchmark experiment lands on traces and token usage. This wraps MLflow's own ASGI
app and adds a one-line script to the UI's page that stores "machine_learning" only when the
browser holds no choice; a choice made with the switch is kept. Nothing else is touched.

Run as `mlflow server --app-name mlbench-training-view ...` (entry point group `mlflow.app`). The
module imports only MLflow and the standard library: the MLflow image installs it on its own.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

WORKFLOW_KEY = "mlflow.workflowType_v1"
DEFAULT_SCRIPT = (
    "<script>try{if(!localStorage.getItem('" + WORKFLOW_KEY + "')){localStorage.setItem('"
    + WORKFLOW_KEY + "',JSON.stringify('machine_learning'))}}catch(e){}</script>"
).encode()
UI_PAGES = ("/", "/index.html")

Message = dict[str, Any]
ASGIApp = Callable[[dict, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def with_training_view_default(page: bytes) -> bytes:
    """The UI's HTML page with the default-setting script first in its <head> (unchanged if it has none)."""
    if DEFAULT_SCRIPT in page or b"<head>" not in page:
        return page
    return page.replace(b"<head>", b"<head>" + DEFAULT_SCRIPT, 1)


class TrainingViewDefault:
    """ASGI middleware: GET of the UI's page gets the script; every other request passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[Message]],
                      send: Callable[[Message], Awaitable[None]]) -> None:
        if scope.get("type") != "http" or scope.get("method") != "GET" or scope.get("path") not in UI_PAGES:
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            kinds = {k.lower(): v for k, v in headers}
            body = b"".join(chunks)
            if b"text/html" in kinds.get(b"content-type", b"") and b"content-encoding" not in kinds:
                body = with_training_view_default(body)
            await send({**start, "headers": headers + [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)


def _mlflow_app() -> ASGIApp:
    from mlflow.server.fastapi_app import app as mlflow_app

    return mlflow_app


def __getattr__(name: str) -> Any:
    """`app`, built on first use: importing this module (tests, entry-point discovery) stays cheap."""
    if name == "app":
        return TrainingViewDefault(_mlflow_app())
    raise AttributeError(name)
