"""The web UI in a real browser (Debian's chromium driven by Playwright) against a server fed by
`trajscope demo`. Screenshots go to test-artifacts/ui/."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import make_server, run_cli

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    srv = make_server(tmp_path_factory.mktemp("ui"))
    srv.start()
    run_cli("demo", "--endpoint", f"http://127.0.0.1:{srv.http_port}", "--sessions", "12", "--seed", "3",
            check=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: `make test` installs it (apt-get install -y chromium)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.errors = errors
    yield pg
    context.close()
    assert errors == [], f"browser errors: {errors}"


def _api(srv, path, **params):
    return httpx.get(f"{srv.api}/api/v1{path}", params=params, timeout=30).json()


def test_runs_list_filter_to_errors_and_back(fed, page):
    page.goto(fed.api + "/")
    page.wait_for_selector("#runs tbody tr")
    total = len(_api(fed, "/traces", limit=1000)["traces"])
    assert page.locator("#runs tbody tr").count() == min(total, 100)
    page.screenshot(path=str(ARTIFACTS / "runs.png"))
    page.get_by_label("errors only").check()
    page.wait_for_url("**status=error**")
    failing = len(_api(fed, "/traces", status="error", limit=1000)["traces"])
    page.wait_for_function(f"document.querySelectorAll('#runs tbody tr').length === {failing}")
    errors = [int(t) for t in page.locator("#runs tbody tr td:nth-child(8)").all_inner_texts()]
    assert errors and all(n > 0 for n in errors)
    page.screenshot(path=str(ARTIFACTS / "runs-errors.png"))
    page.go_back()
    page.wait_for_function("!location.hash.includes('status=error')")
    page.wait_for_function(f"document.querySelectorAll('#runs tbody tr').length === {min(total, 100)}")


def test_run_page_waterfall_critical_path_and_details(fed, page):
    trace = _api(fed, "/traces", status="error")["traces"][0]
    trace_id = trace["trace_id"]
    trajectory = _api(fed, f"/traces/{trace_id}/trajectory")
    latency = _api(fed, f"/traces/{trace_id}/latency")
    page.goto(fed.api + "/#/?status=error")
    page.locator(f"#runs tbody tr[data-trace-id='{trace_id}']").click()
    page.wait_for_selector("#waterfall .wf-row")
    assert page.locator("#waterfall").get_attribute("data-total-rows") == str(len(trajectory["steps"]))
    rows = page.locator("#waterfall .wf-row")
    shown = [rows.nth(i).get_attribute("data-span-id") for i in range(rows.count())]
    assert shown == [s["span_id"] for s in trajectory["steps"]][:len(shown)]  # the API's order
    critical = {s["span_id"] for s in latency["critical_path"]}
    highlighted = {rows.nth(i).get_attribute("data-span-id") for i in range(rows.count())
                   if "crit" in (rows.nth(i).get_attribute("class") or "")}
    assert highlighted == critical & set(shown) and highlighted
    categories = {c for c, v in latency["by_category"].items() if v["critical_ms"] > 0}
    assert set(page.locator("#breakdown div").evaluate_all("ds => ds.map(d => d.dataset.category)")) == categories
    page.screenshot(path=str(ARTIFACTS / "run.png"))

    llm = next(s for s in trajectory["steps"] if s["category"] == "llm")
    page.locator(f".wf-row[data-span-id='{llm['span_id']}']").click()
    page.wait_for_url(f"**/#/run/{trace_id}/{llm['span_id']}")
    details = page.locator("#details")
    details.get_by_text("cost").wait_for()
    text = details.inner_text()
    assert llm["model"] in text and f"{llm['input_tokens']:,}" in text and "computed" in text
    page.screenshot(path=str(ARTIFACTS / "step-details.png"))

    index = next(i for i, s in enumerate(trajectory["steps"]) if s["span_id"] == llm["span_id"])
    page.locator("#waterfall").focus()
    page.keyboard.press("j")
    nxt = trajectory["steps"][index + 1]
    page.wait_for_url(f"**/#/run/{trace_id}/{nxt['span_id']}")
    assert page.locator(".wf-row.selected").get_attribute("data-span-id") == nxt["span_id"]
    page.keyboard.press("k")
    page.wait_for_url(f"**/#/run/{trace_id}/{llm['span_id']}")

    failed = next(a for a in trajectory["anomalies"] if a["kind"] == "error")
    row = page.locator(f".wf-row[data-span-id='{failed['span_id']}']")
    assert "anomaly" in row.get_attribute("class")
    row.click()
    details.locator(".error-box").wait_for()  # the exception, with its stack trace
    assert "ToolError" in details.inner_text() and "Traceback" in details.locator(".error-box pre").inner_text()
    page.screenshot(path=str(ARTIFACTS / "step-exception.png"))


def test_a_step_deep_link_opens_it(fed, page):
    trace_id = _api(fed, "/traces")["traces"][0]["trace_id"]
    step = _api(fed, f"/traces/{trace_id}/trajectory")["steps"][1]
    page.goto(f"{fed.api}/#/run/{trace_id}/{step['span_id']}")
    page.wait_for_selector(".wf-row.selected")
    assert page.locator(".wf-row.selected").get_attribute("data-span-id") == step["span_id"]
    assert step["name"] in page.locator("#details h3").inner_text()


def test_session_and_overview_pages(fed, page):
    session = next(t["session_id"] for t in _api(fed, "/traces", limit=200)["traces"] if t["session_id"])
    expected = _api(fed, f"/sessions/{session}")
    page.goto(f"{fed.api}/#/session/{session}")
    page.wait_for_selector("#turns tbody tr")
    assert page.locator("#turns tbody tr").count() == len(expected["traces"])
    page.screenshot(path=str(ARTIFACTS / "session.png"))
    page.goto(f"{fed.api}/#/overview")
    page.wait_for_selector(".chart svg")
    assert page.locator(".chart svg").count() >= 6
    page.locator("#ingest-rate").get_by_text("spans/s").wait_for()
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)


def test_sql_console(fed, page):
    page.goto(f"{fed.api}/#/sql")
    page.wait_for_selector("#schema details")
    assert "llm_calls" in page.locator("#schema").inner_text()
    page.locator("#sql-editor").fill("SELECT model, count(*) AS calls FROM llm_calls GROUP BY model ORDER BY model")
    page.locator("#sql-run").click()
    page.wait_for_selector("#sql-results tbody tr")
    expected = httpx.post(f"{fed.api}/api/v1/sql", json={
        "sql": "SELECT model, count(*) AS calls FROM llm_calls GROUP BY model ORDER BY model"}).json()["rows"]
    assert page.locator("#sql-results tbody tr").count() == len(expected)
    assert page.locator("#sql-results tbody tr td").first.inner_text() == expected[0]["model"]
    page.screenshot(path=str(ARTIFACTS / "sql.png"))
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    assert download.value.suggested_filename == "trajscope-result.csv"
    page.locator("#sql-editor").fill("DROP TABLE spans")
    page.locator("#sql-run").click()
    assert "forbidden" in page.locator("#sql-error").inner_text()
    page.errors.clear()  # the refused query's 400 is expected in the console


def test_a_5000_step_run_is_virtualised_and_reaches_its_last_step(fed, page):
    from tests.otlp_builders import make_span

    root = make_span("invoke_agent big", start=0, end=10**12, attrs={"gen_ai.agent.name": "big"})
    spans = [root] + [make_span(f"execute_tool t{i}", trace_id=root.trace_id, parent=root, start=i * 10**8,
                                end=i * 10**8 + 5 * 10**7, attrs={"gen_ai.tool.name": f"t{i % 7}"})
                      for i in range(4999)]
    assert fed.export(spans).status_code == 200
    trace_id = root.trace_id.hex()
    page.goto(f"{fed.api}/#/run/{trace_id}")
    page.wait_for_selector("#waterfall .wf-row")
    assert page.locator("#waterfall").get_attribute("data-total-rows") == "5000"
    assert page.locator("#waterfall .wf-row").count() < 150  # only what is visible (plus a margin) exists
    page.locator("#waterfall").evaluate("w => { w.scrollTop = w.scrollHeight; }")
    page.wait_for_selector("#waterfall .wf-row[data-index='4999']")
    page.locator("#waterfall .wf-row[data-index='4999']").click()
    page.wait_for_url(f"**/#/run/{trace_id}/*")
    assert "t4998" in page.locator("#details h3").inner_text()
    page.screenshot(path=str(ARTIFACTS / "run-5000-steps.png"))


def test_dark_theme_follows_the_system(fed, browser):
    context = browser.new_context(color_scheme="dark", viewport={"width": 1200, "height": 700})
    pg = context.new_page()
    pg.goto(fed.api + "/")
    pg.wait_for_selector("#runs tbody tr")
    background = pg.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(20, 22, 28)"
    pg.screenshot(path=str(ARTIFACTS / "runs-dark.png"))
    context.close()


def _shown(page, rows: int) -> None:
    """Wait until the runs list has finished loading with ``rows`` rows: a new view starts with an empty
    table, and its status line is set only once its answer is in."""
    page.wait_for_function(f"document.getElementById('status').textContent === '{rows} runs shown' && "
                           f"document.querySelectorAll('#runs tbody tr').length === {rows}")


def test_time_range_filter(fed, page):
    # Counted through the API: the 5,000-step run above started in 1970, the demo's runs start now.
    before_2001 = len(_api(fed, "/traces", limit=1000, until="2001-01-01T00:00:00Z")["traces"])
    since_2001 = len(_api(fed, "/traces", limit=1000, since="2001-01-01T00:00:00Z")["traces"])
    total = len(_api(fed, "/traces", limit=1000)["traces"])
    assert since_2001 > 0 and before_2001 + since_2001 == total
    page.goto(fed.api + "/")
    _shown(page, min(total, 100))
    page.get_by_label("to").fill("2001-01-01T00:00")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**until=2001**")
    _shown(page, min(before_2001, 100))
    page.get_by_label("to").fill("")
    page.get_by_label("from").fill("2001-01-01T00:00")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**since=2001**")
    _shown(page, min(since_2001, 100))
    assert "until" not in page.url


_JUNK = re.compile(r"\b(null|undefined|NaN)\b|\[object Object\]|\b1 (anomalies|runs|spans|steps)\b")


def _visible_junk(page) -> list[str]:
    return [m.group(0) for m in _JUNK.finditer(page.inner_text("body"))]


def test_no_view_shows_null_undefined_nan_or_object_text(fed, page):
    """What a new user sees first: every view over the demo data, every run page included."""
    traces = _api(fed, "/traces", limit=200)["traces"]
    session = next(t["session_id"] for t in traces if t["session_id"])
    views = {"runs": ("#/", "#runs tbody tr"), "overview": ("#/overview", ".chart svg"),
             "sql": ("#/sql", "#schema details"), "session": (f"#/session/{session}", "#turns tbody tr")}
    views |= {f"run {t['trace_id']}": (f"#/run/{t['trace_id']}", "#waterfall") for t in traces}
    found = {}
    for name, (route, ready) in views.items():
        page.goto(f"{fed.api}/{route}")
        page.wait_for_selector(ready)
        if junk := _visible_junk(page):
            found[name] = junk
    assert not found, found


def test_step_details_show_messages_and_evaluations_sent_as_log_records(fed, page):
    import json

    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from tests.otlp_builders import kvs, make_span

    llm = make_span("chat gpt-4o", attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                                          "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 4},
                    start=1_700_000_000_000_000_000, end=1_700_000_001_000_000_000)
    assert fed.export([llm]).status_code == 200
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    details = {"gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be terse."}]),
               "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                   {"type": "text", "content": "Is it raining in Oslo?"}]}]),
               "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                   {"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"city": "Oslo"}}]}])}
    evaluation = {"gen_ai.evaluation.name": "Groundedness", "gen_ai.evaluation.score.value": 0.25,
                  "gen_ai.evaluation.score.label": "ungrounded", "gen_ai.evaluation.explanation": "cites nothing"}
    for name, attrs in (("gen_ai.client.inference.operation.details", details),
                        ("gen_ai.evaluation.result", evaluation)):
        record = scope.log_records.add(time_unix_nano=1_700_000_000_500_000_000, trace_id=llm.trace_id,
                                       span_id=llm.span_id, event_name=name)
        record.attributes.extend(kvs(attrs))
    sent = httpx.post(f"http://127.0.0.1:{fed.http_port}/v1/logs", content=request.SerializeToString(),
                      headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert sent.status_code == 200
    trace_id, span_id = llm.trace_id.hex(), llm.span_id.hex()
    page.goto(f"{fed.api}/#/run/{trace_id}/{span_id}")
    details_panel = page.locator("#details")
    details_panel.locator(".messages-input").wait_for()
    assert "Input messages (1, from event)" in details_panel.locator(".messages-input summary").inner_text()
    assert "Is it raining in Oslo?" in details_panel.locator(".messages-input").inner_text()
    assert "Be terse." in details_panel.locator(".messages-system").inner_text()
    assert '→ get_weather({"city":"Oslo"})' in details_panel.locator(".messages-output").inner_text()
    table = details_panel.locator(".evaluations").inner_text()
    assert "Groundedness" in table and "0.25" in table and "ungrounded" in table and "cites nothing" in table
    page.screenshot(path=str(ARTIFACTS / "step-messages.png"))


def test_a_retrieval_step_lists_its_documents_by_rank_and_loads_the_whole_content_when_opened(fed, page):
    import json

    from tests.otlp_builders import make_span

    whole = "Rayleigh scattering makes the sky blue. " * 30
    root = make_span("invoke_agent rag", attrs={"gen_ai.agent.name": "rag"}, start=1_700_000_000_000_000_000,
                     end=1_700_000_002_000_000_000)
    attrs = {"openinference.span.kind": "RERANKER", "reranker.query": "why is the sky blue?",
             "reranker.input_documents.0.document.id": "physics-101",
             "reranker.input_documents.0.document.content": whole,
             "reranker.input_documents.1.document.id": "poem-7",
             "reranker.input_documents.1.document.content": "The sky is blue because it is sad.",
             "reranker.output_documents.0.document.id": "poem-7",
             "reranker.output_documents.0.document.score": 0.91,
             "reranker.output_documents.0.document.content": "The sky is blue because it is sad.",
             "reranker.output_documents.1.document.id": "physics-101",
             "reranker.output_documents.1.document.score": 0.42,
             "reranker.output_documents.1.document.content": whole,
             "reranker.output_documents.1.document.metadata": json.dumps({"source": "physics.pdf"})}
    rerank = make_span("rerank", trace_id=root.trace_id, parent=root, attrs=attrs,
                       start=1_700_000_000_100_000_000, end=1_700_000_000_300_000_000)
    assert fed.export([root, rerank]).status_code == 200
    page.goto(f"{fed.api}/#/run/{root.trace_id.hex()}/{rerank.span_id.hex()}")
    docs = page.locator("#details .documents")
    docs.wait_for()
    assert "Retrieved documents (2)" in docs.inner_text() and "why is the sky blue?" in docs.inner_text()
    items = docs.locator("details.document")
    first, second = items.nth(0).locator("summary").inner_text(), items.nth(1).locator("summary").inner_text()
    assert first.startswith("#1") and "0.910" in first and "poem-7" in first and "(was #2)" in first
    assert second.startswith("#2") and "physics-101" in second and "(was #1)" in second
    content = items.nth(1).locator(".document-content")
    assert len(content.inner_text()) < len(whole)  # a preview until opened
    items.nth(1).locator("summary").click()
    page.wait_for_function("document.querySelectorAll('#details .document-content')[1].textContent.length > 1000")
    assert content.inner_text().strip() == whole.strip()
    assert "physics.pdf" in items.nth(1).inner_text()
    page.screenshot(path=str(ARTIFACTS / "step-documents.png"))


def test_a_key_for_one_project_sees_only_that_project_in_every_view(browser, tmp_path):
    from tests.otlp_builders import make_request, make_span

    keys_file = tmp_path / "keys.toml"

    def add(scopes: str, projects: str, name: str) -> str:
        return run_cli("keys", "add", "--keys-file", str(keys_file), "--scopes", scopes, "--projects", projects,
                       "--name", name, check=True).stdout.strip().splitlines()[-1]

    admin, reader = add("admin", "*", "admin"), add("read", "shop", "shop-read")
    srv = make_server(tmp_path, "--keys-file", str(keys_file))
    srv.start()
    try:
        run_cli("demo", "--endpoint", f"http://127.0.0.1:{srv.http_port}", "--sessions", "4", "--seed", "2",
                "--project", "shop", "--api-key", admin, check=True)
        secret = make_span("invoke_agent lab-secret-run", attrs={"gen_ai.agent.name": "lab-secret-agent"})
        body = make_request([secret], resource={"service.name": "lab-svc", "trajscope.project": "lab"})
        httpx.post(srv.otlp_http, content=body.SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {admin}"}, timeout=30)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.add_init_script(f"localStorage.setItem('trajscope-api-key', {reader!r})")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        for view, ready in (("#/", ".run-row, tr"), ("#/overview", ".chart svg"), ("#/sql", "#sql-editor")):
            page.goto(f"{srv.api}/{view}")
            page.wait_for_selector(ready)
            page.wait_for_timeout(300)
            text = page.inner_text("body")
            assert "lab-secret" not in text and "lab-svc" not in text, view
            if view == "#/":
                assert "invoke_agent" in text  # the project's own runs are listed
        page.goto(f"{srv.api}/#/sql")
        page.wait_for_selector("#schema details")  # the column list: names and types, no rows
        page.locator("#sql-editor").fill("SELECT DISTINCT project FROM traces")
        page.locator("#sql-run").click()
        page.wait_for_selector("#sql-results tbody tr")
        assert [c.inner_text() for c in page.locator("#sql-results tbody td").all()] == ["shop"]
        assert errors == []
        context.close()
    finally:
        srv.stop()
