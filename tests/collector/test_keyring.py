"""Keys files: salted hashes only, scopes and projects, constant-time checks, reloads without a restart."""

from __future__ import annotations

import pytest

from tests.otlp_builders import make_request, make_span
from trajscope.collector import keyring
from trajscope.collector.auth import UNAUTHENTICATED, Access
from trajscope.collector.keyring import Keyring, KeysFileError, new_key, read_keys, write_keys
from trajscope.collector.project_access import default_project, restrict


def test_a_key_is_stored_as_a_salted_hash_and_checked_by_its_secret(tmp_path):
    path = tmp_path / "keys.toml"
    key, secret = new_key("prod", ["ingest"], ["shop"])
    other, other_secret = new_key("", ["read"], ["*"])
    write_keys(path, [key, other])
    text = path.read_text()
    assert secret not in text and secret.split("_")[-1] not in text and key.digest in text
    assert oct(path.stat().st_mode)[-3:] == "600"
    ring = Keyring(path)
    assert ring.authenticate(secret) == key and ring.authenticate(other_secret).name == f"key-{other.id}"
    assert ring.authenticate(secret[:-1] + ("0" if secret[-1] != "0" else "1")) is None
    assert ring.authenticate(f"tsk_{key.id}_") is None and ring.authenticate("nope") is None
    assert read_keys(path) == {key.id: key, other.id: other}


def test_scopes_and_projects_decide_what_a_key_may_do(tmp_path):
    path = tmp_path / "keys.toml"
    ingest, ingest_secret = new_key("in", ["ingest"], ["shop"])
    admin, admin_secret = new_key("adm", ["admin"], ["*"])
    write_keys(path, [ingest, admin])
    access = Access("single-key", Keyring(path))
    assert access.check(ingest_secret, "ingest").projects == frozenset({"shop"})
    assert "no 'read' scope" in access.check(ingest_secret, "read")
    assert access.check(admin_secret, "read").projects is None  # admin holds every scope, * every project
    assert access.check("single-key", "admin").projects is None
    assert access.check(None, "read") == UNAUTHENTICATED and access.check("single-kez", "read") == UNAUTHENTICATED
    assert Access().open and Access().check(None, "admin").projects is None


def test_bad_entries_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(KeysFileError, match="scopes must be"):
        new_key("x", ["write"], ["a"])
    with pytest.raises(KeysFileError, match="at least one project"):
        new_key("x", ["read"], [])
    path = tmp_path / "keys.toml"
    path.write_text("[[key]]\nid = 'a'\n")
    with pytest.raises(KeysFileError, match=str(path)):
        Keyring(path)


def test_a_changed_file_takes_effect_without_a_restart_and_a_broken_one_keeps_the_old_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(keyring, "RELOAD_EVERY_S", 0.0)
    path = tmp_path / "keys.toml"
    first, first_secret = new_key("first", ["read"], ["*"])
    write_keys(path, [first])
    ring = Keyring(path)
    second, second_secret = new_key("second", ["read"], ["*"])
    write_keys(path, [first, second])
    assert ring.authenticate(second_secret) == second
    from dataclasses import replace
    write_keys(path, [replace(first, revoked=True), second])
    assert ring.authenticate(first_secret) is None
    path.write_text("this is not toml [")
    assert ring.authenticate(second_secret) == second  # said in the log; the keys read before stay


def _resources(*projects):
    spans = [make_span(f"s{i}") for i in range(len(projects))]
    request = make_request([])
    request.ClearField("resource_spans")
    for span, project in zip(spans, projects, strict=True):
        rs = request.resource_spans.add()
        if project is not None:
            attr = rs.resource.attributes.add(key="trajscope.project")
            attr.value.string_value = project
        rs.scope_spans.add().spans.append(span)
    return request


def test_an_export_keeps_only_the_resources_of_projects_its_key_may_write():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from trajscope.collector.auth import Grant

    grant = Grant("shop-ingest", frozenset({"shop"}))
    assert default_project(grant, "other") == "shop"  # the key's one project, whatever the header says
    body = _resources("shop", None, "other", "other").SerializeToString()
    got = restrict(body, "protobuf", "traces", grant, "shop")
    assert got.refused == 2 and "may write to project(s) shop, not other" in got.message
    kept = ExportTraceServiceRequest.FromString(got.body)
    assert [s.name for rs in kept.resource_spans for ss in rs.scope_spans for s in ss.spans] == ["s0", "s1"]
    unscoped = restrict(body, "protobuf", "traces", Grant("all"), "default")
    assert unscoped.body is body and unscoped.refused == 0
    import orjson
    doc = {"resourceSpans": [
        {"resource": {"attributes": [{"key": "trajscope.project", "value": {"stringValue": "other"}}]},
         "scopeSpans": [{"spans": [{"name": "x"}, {"name": "y"}]}]},
        {"resource": {"attributes": []}, "scopeSpans": [{"spans": [{"name": "z"}]}]}]}
    got = restrict(orjson.dumps(doc), "json", "traces", grant, "shop")
    assert got.refused == 2 and [s["name"] for s in orjson.loads(got.body)["resourceSpans"][0]["scopeSpans"][0]
                                 ["spans"]] == ["z"]
