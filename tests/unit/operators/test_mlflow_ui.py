"""The MLflow server app of the stack and the MLflow image: the UI's page gains the script that
makes the training-runs view the default; every other response passes through untouched."""

import asyncio

import pytest

from operators.stack.mlflow_ui import DEFAULT_SCRIPT, TrainingViewDefault, with_training_view_default

pytestmark = pytest.mark.unit

PAGE = b'<!doctype html><html lang="en"><head><meta charset="utf-8"/><title>MLflow</title></head><body></body></html>'


def test_the_script_goes_first_in_the_head_once_and_only_sets_a_missing_choice():
    page = with_training_view_default(PAGE)
    assert page.startswith(b'<!doctype html><html lang="en"><head>' + DEFAULT_SCRIPT + b"<meta")
    assert with_training_view_default(page) == page
    assert b"if(!localStorage.getItem('mlflow.workflowType_v1'))" in DEFAULT_SCRIPT
    assert b"JSON.stringify('machine_learning')" in DEFAULT_SCRIPT
    assert with_training_view_default(b"not html") == b"not html"


def _served(path, body, content_type=b"text/html; charset=utf-8", method="GET", extra_headers=()):
    """What a client receives from the wrapped app for one request; the inner app sends in two parts."""
    async def inner(scope, receive, send):
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra_headers]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body[:10], "more_body": True})
        await send({"type": "http.response.body", "body": body[10:]})

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    asyncio.run(TrainingViewDefault(inner)({"type": "http", "method": method, "path": path}, receive, send))
    headers = dict(sent[0]["headers"])
    return headers, b"".join(m.get("body", b"") for m in sent[1:])


def test_the_ui_page_is_rewritten_with_a_matching_length():
    headers, body = _served("/", PAGE)
    assert body == with_training_view_default(PAGE) and headers[b"content-length"] == str(len(body)).encode()


@pytest.mark.parametrize("path, content_type, method, extra", [
    ("/ajax-api/2.0/mlflow/experiments/search", b"application/json", "GET", ()),
    ("/static-files/static/js/main.js", b"text/javascript", "GET", ()),
    ("/", b"text/html", "POST", ()),
    ("/", b"text/html", "GET", ((b"content-encoding", b"gzip"),)),
])
def test_everything_else_passes_through_untouched(path, content_type, method, extra):
    body = b"<head>" + b"x" * 40
    headers, served = _served(path, body, content_type, method, extra)
    assert served == body and headers[b"content-length"] == str(len(body)).encode()
