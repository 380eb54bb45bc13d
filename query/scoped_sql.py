"""Analyst SQL for a key limited to some projects: the same views and tables, holding only its projects' rows.

The statement must be one plain SELECT reading only the analyst relations (``storage.views.ANALYST_RELATIONS``)
and its own CTEs, by their bare names (and ``information_schema.columns`` / ``.tables``: names and types, no rows):
no other schema- or catalog-qualified name (``main.spans``), no table function
but ``range`` / ``generate_series`` / ``unnest`` (``query()`` runs SQL from a string, ``duckdb_*()`` read the
catalog). It is then wrapped in CTEs of the same names — the tables filtered to the key's projects, the views
defined over those — which take precedence over the stored relations, so no name it can write reaches another
project's rows. DuckDB's own parse tree (``json_serialize_sql``) is what is checked, not the text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import duckdb

from trajscope.query.analyst_sql import SqlError, SqlErrorCode, check_statement
from trajscope.storage.views import ANALYST_RELATIONS, TABLES, VIEWS

ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
# Column names and types, no rows: what the web UI's SQL page lists beside the editor.
ALLOWED_QUALIFIED = frozenset({("information_schema", "columns"), ("information_schema", "tables")})


def scoped_statement(con: duckdb.DuckDBPyConnection, sql: str, projects: Iterable[str]) -> str:
    """``sql`` rewritten to read only ``projects``, or ``SqlError`` when it reaches past the analyst relations."""
    check_statement(con, sql)
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    if tree.get("error"):
        raise SqlError(SqlErrorCode.FORBIDDEN, "a key limited to some projects may run plain SELECT statements only "
                       f"({tree.get('error_message', 'not a SELECT')})")
    own = {name for node in _nodes(tree) for name in _cte_names(node)}
    for node in _nodes(tree):
        kind = node.get("type")
        if kind == "BASE_TABLE":
            name = node.get("table_name", "")
            if (node.get("schema_name"), name) in ALLOWED_QUALIFIED and not node.get("catalog_name"):
                continue
            if node.get("schema_name") or node.get("catalog_name"):
                raise SqlError(SqlErrorCode.FORBIDDEN, f"name relations without a schema or catalog: "
                               f"{'.'.join(p for p in (node.get('catalog_name'), node.get('schema_name'), name) if p)}")
            if name not in ANALYST_RELATIONS and name not in own:
                raise SqlError(SqlErrorCode.FORBIDDEN, f"{name!r} is not one of the trace tables and views "
                               f"({', '.join(ANALYST_RELATIONS)})")
        elif kind == "SHOW_REF":  # DESCRIBE, SUMMARIZE, SHOW: bound against the stored relations, not the CTEs
            raise SqlError(SqlErrorCode.FORBIDDEN, "DESCRIBE, SUMMARIZE and SHOW are not available to a key limited "
                           "to some projects (information_schema.columns lists the columns)")
        elif kind == "TABLE_FUNCTION":
            function = (node.get("function") or {}).get("function_name", "")
            if function not in ALLOWED_TABLE_FUNCTIONS:
                raise SqlError(SqlErrorCode.FORBIDDEN, f"table function {function}() is not available to a key "
                               "limited to some projects")
    allowed = ", ".join("'" + p.replace("'", "''") + "'" for p in sorted(projects))
    scoped = [f"{table} AS (SELECT * FROM {table} WHERE project IN ({allowed}))" for table in TABLES]
    scoped += [f"{name} AS ({body})" for name, body in VIEWS.items()]
    body = sql.strip().rstrip(";")
    return f"WITH {', '.join(scoped)} SELECT * FROM ({body}\n) AS scoped_query"


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _cte_names(node: dict[str, Any]) -> list[str]:
    ctes = node.get("cte_map")
    return [entry.get("key", "") for entry in (ctes or {}).get("map", [])] if isinstance(ctes, dict) else []
