import duckdb
import pytest

from trajscope.storage import migrations


def test_migrate_fresh_database_reaches_latest_and_is_repeatable():
    con = duckdb.connect()
    assert migrations.migrate(con) == migrations.LATEST_VERSION
    assert migrations.migrate(con) == migrations.LATEST_VERSION
    versions = [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()]
    assert versions == list(range(1, migrations.LATEST_VERSION + 1))
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"spans", "traces"} <= tables


def test_migrate_refuses_a_newer_database():
    con = duckdb.connect()
    migrations.migrate(con)
    con.execute("INSERT INTO schema_version VALUES (?, now())", [migrations.LATEST_VERSION + 1])
    with pytest.raises(RuntimeError, match="newer than this trajscope"):
        migrations.migrate(con)
