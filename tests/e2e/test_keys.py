"""Keys with scopes and projects against a real server: `trajscope keys` manages the file, OTLP (HTTP and gRPC,
Bearer, x-api-key, gRPC metadata) and the API check them, a key for one project writes and reads only that
project, and a changed file takes effect without a restart."""

from __future__ import annotations

import os
import time

import grpc
import httpx
import pytest

from tests.e2e.conftest import make_server, run_cli, wait_for
from tests.otlp_builders import make_request, make_span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _add(keys_file, scopes: str, projects: str, name: str) -> str:
    done = run_cli("keys", "add", "--keys-file", str(keys_file), "--scopes", scopes, "--projects", projects,
                   "--name", name)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]  # alone on the last line
    assert key.startswith("tsk_") and key not in keys_file.read_text()
    return key


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    base = tmp_path_factory.mktemp("keys")
    keys_file = base / "keys.toml"
    keys = {"admin": _add(keys_file, "admin", "*", "admin"),
            "shop_in": _add(keys_file, "ingest", "shop", "shop-ingest"),
            "shop_read": _add(keys_file, "read", "shop", "shop-read"),
            "both_read": _add(keys_file, "read", "shop,lab", "both-read")}
    srv = make_server(base, "--keys-file", str(keys_file))
    srv.start()
    yield srv, keys_file, keys
    if srv.proc and srv.proc.poll() is None:
        srv.stop()


def _http_export(srv, spans, *, key=None, header="authorization", project=None, resource=None):
    headers = {"Content-Type": "application/x-protobuf"}
    if key:
        headers[header] = f"Bearer {key}" if header == "authorization" else key
    if project:
        headers["x-trajscope-project"] = project
    body = make_request(spans, resource=resource).SerializeToString()
    return httpx.post(srv.otlp_http, content=body, headers=headers, timeout=30)


def _get(srv, path, key, **params):
    return httpx.get(f"{srv.api}{path}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_keys_list_shows_names_scopes_projects_never_keys(keyed):
    _, keys_file, keys = keyed
    listing = run_cli("keys", "list", "--keys-file", str(keys_file)).stdout
    assert "shop-ingest" in listing and "ingest" in listing and "lab,shop" in listing
    assert not any(k in listing for k in keys.values())


def test_ingest_scopes_and_the_project_the_key_names(keyed):
    srv, _, keys = keyed
    assert _http_export(srv, [make_span("anon")]).status_code == 401
    assert _http_export(srv, [make_span("reader")], key=keys["shop_read"]).status_code == 403  # no ingest scope
    # The key's one project wins over the header; a resource naming another project is refused, not stored.
    mine, theirs = make_span("mine"), make_span("theirs")
    ok = _http_export(srv, [mine], key=keys["shop_in"], header="x-api-key", project="lab")
    assert ok.status_code == 200
    refused = _http_export(srv, [theirs], key=keys["shop_in"],
                           resource={"service.name": "svc", "trajscope.project": "lab"})
    assert refused.status_code == 200
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
    partial = ExportTraceServiceResponse.FromString(refused.content).partial_success
    assert partial.rejected_spans == 1 and "may write to project(s) shop, not lab" in partial.error_message
    with grpc.insecure_channel(srv.otlp_grpc) as channel:
        call = channel.unary_unary(EXPORT)
        call(make_request([make_span("via-grpc")]).SerializeToString(), timeout=10,
             metadata=(("authorization", f"Bearer {keys['shop_in']}"),))
        with pytest.raises(grpc.RpcError) as denied:
            call(make_request([make_span("no")]).SerializeToString(), timeout=10,
                 metadata=(("authorization", f"Bearer {keys['shop_read']}"),))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert _http_export(srv, [make_span("lab-run")], key=keys["admin"], project="lab").status_code == 200
    names = wait_for(lambda: {t["root_name"]: t["project"] for t in _get(
        srv, "/api/v1/traces", keys["admin"], limit=100).json()["traces"]} or None)
    assert names == {"mine": "shop", "via-grpc": "shop", "lab-run": "lab"}


def test_a_read_key_sees_only_its_projects(keyed):
    srv, _, keys = keyed
    wait_for(lambda: len(_get(srv, "/api/v1/traces", keys["admin"]).json()["traces"]) >= 3)
    shop = _get(srv, "/api/v1/traces", keys["shop_read"]).json()["traces"]
    assert shop and {t["project"] for t in shop} == {"shop"}
    lab = next(t for t in _get(srv, "/api/v1/traces", keys["admin"]).json()["traces"] if t["project"] == "lab")
    assert _get(srv, f"/api/v1/traces/{lab['trace_id']}", keys["shop_read"]).status_code == 404
    assert _get(srv, "/api/v1/traces", keys["shop_read"], project="lab").status_code == 403
    assert _get(srv, "/api/v1/stats/usage", keys["shop_read"], project="lab").status_code == 403
    def sql(query: str) -> httpx.Response:
        return httpx.post(f"{srv.api}/api/v1/sql", json={"sql": query},
                          headers={"Authorization": f"Bearer {keys['shop_read']}"}, timeout=30)

    assert {r["project"] for r in sql("SELECT DISTINCT project FROM spans").json()["rows"]} == {"shop"}
    assert sql("SELECT count(*) FROM main.spans").status_code == 400  # forbidden: reaches past the scope
    metrics = _get(srv, "/metrics", keys["shop_read"])
    assert metrics.status_code == 403 and "across projects" in metrics.json()["error"]["message"]
    # A key for two projects names the one it reads.
    assert _get(srv, "/api/v1/traces", keys["both_read"]).status_code == 400
    assert {t["project"] for t in _get(srv, "/api/v1/traces", keys["both_read"], project="lab").json()["traces"]} \
        == {"lab"}
    assert _get(srv, "/api/v1/traces", keys["shop_in"]).status_code == 403  # an ingest key cannot read
    assert httpx.get(f"{srv.api}/api/v1/traces", timeout=30).status_code == 401


def test_keys_added_and_revoked_take_effect_without_a_restart(keyed):
    srv, keys_file, keys = keyed
    late = _add(keys_file, "read", "*", "late")
    assert wait_for(lambda: _get(srv, "/api/v1/traces", late).status_code == 200, timeout=10)
    done = run_cli("keys", "revoke", "--keys-file", str(keys_file), "late")
    assert done.returncode == 0, done.stderr
    assert wait_for(lambda: _get(srv, "/api/v1/traces", late).status_code == 401, timeout=10)
    log = srv.log_text(tail=None)
    assert not any(k in log for k in (*keys.values(), late))  # keys are never logged


def test_a_server_on_a_public_address_without_keys_refuses_to_start(tmp_path):
    done = run_cli("serve", "--data", str(tmp_path / "d"), "--host", "0.0.0.0", "--api-port", "0")
    assert done.returncode == 1
    assert "refusing to serve 0.0.0.0 without keys" in done.stderr and "--insecure" in done.stderr
    assert not os.path.exists(tmp_path / "d" / "trajscope.duckdb")


def _audit(srv) -> list[dict]:
    from trajscope.audit import AUDIT_FILE, AuditLog

    return AuditLog(srv.data / AUDIT_FILE).read()


def test_erasure_needs_admin_and_every_admin_action_and_query_is_audited(keyed):
    srv, _, keys = keyed
    victim = make_span("erase-me", attrs={"user.id": "mallory"})
    assert _http_export(srv, [victim], key=keys["shop_in"]).status_code == 200
    wait_for(lambda: any(t["root_name"] == "erase-me" for t in _get(srv, "/api/v1/traces", keys["admin"]).json()[
        "traces"]))
    reader = httpx.post(f"{srv.api}/api/v1/delete", json={"user_id": "mallory"},
                        headers={"Authorization": f"Bearer {keys['shop_read']}"}, timeout=30)
    assert reader.status_code == 403
    done = run_cli("delete", "--user", "mallory", "--url", srv.api, "--api-key", keys["admin"])
    assert done.returncode == 0, done.stderr
    assert "deleted 1 traces (1 spans" in done.stdout
    assert not any(t["root_name"] == "erase-me" for t in _get(srv, "/api/v1/traces", keys["admin"]).json()["traces"])
    httpx.post(f"{srv.api}/api/v1/sql", json={"sql": "SELECT 42"},
               headers={"Authorization": f"Bearer {keys['shop_read']}"}, timeout=30)
    lines = _audit(srv)
    deletes = [a for a in lines if a["action"] == "delete"]
    assert deletes[-1]["actor"] == "admin" and deletes[-1]["user_id"] == "mallory" and deletes[-1]["traces"] == 1
    import hashlib
    queries = [a for a in lines if a["action"] == "sql" and a["sha256"] == hashlib.sha256(b"SELECT 42").hexdigest()]
    assert queries and queries[-1]["actor"] == "shop-read" and "duration_ms" in queries[-1]
    assert "SELECT 42" not in (srv.data / "audit.jsonl").read_text()  # the statement's hash, not its text
    changes = [a for a in lines if a["action"] == "keys_changed"]
    assert {"late"} <= {n for a in changes for n in a["added"]} and {"late"} <= {n for a in changes
                                                                                   for n in a["revoked"]}


def test_retention_deletes_old_traces_on_its_schedule(tmp_path):
    srv = make_server(tmp_path, "--retention", "30d", "--retention-every", "1s")
    srv.start()
    try:
        now = time.time_ns()
        old = make_span("old-run", start=now - 40 * 86_400 * 10**9, end=now - 40 * 86_400 * 10**9 + 10**9)
        new = make_span("new-run", start=now - 10**9, end=now)
        assert srv.export([old, new]).status_code == 200
        assert wait_for(lambda: [t["root_name"] for t in srv.get("/api/v1/traces").json()["traces"]] == ["new-run"],
                        timeout=20)
        runs = [a for a in _audit(srv) if a["action"] == "retention_run"]
        assert runs and sum(a["traces"] for a in runs) == 1
    finally:
        srv.stop()


def test_the_polars_client_with_a_key_for_one_project(keyed):
    from trajscope.client import Client

    srv, _, keys = keyed
    with Client(srv.api, keys["shop_read"]) as client:
        assert set(client.traces()["project"].to_list()) == {"shop"}
        assert set(client.sql("SELECT DISTINCT project FROM traces")["project"].to_list()) == {"shop"}
