"""Loads smaller than a row group, committed one after another into a file store, with realistic spans.

DuckDB commits such a load row by row from the transaction's local storage. With its dictionary-FSST string
compression (storage format 1.3 and later) that commit read freed memory when appending the ``retrieval``
struct and killed the process (SIGSEGV); the store disables that compression. Run in a child process so that
a crash fails the test instead of ending the test run."""

import subprocess
import sys
import textwrap

_LOADS = textwrap.dedent("""
    import sys
    import pyarrow as pa
    import pyarrow.compute as pc
    from trajscope.collector.columnar_decode import decode_request
    from trajscope.storage.duckdb_store import DuckDBStore
    from trajscope.workload import Workload, to_requests

    requests = to_requests(Workload(seed=7).sessions(10**9), spans_per_request=512)
    tables, rows = [], 0
    while rows < 20_000:
        table = decode_request(next(requests).SerializeToString()).table
        tables.append(table)
        rows += table.num_rows
    source = pa.concat_tables(tables)
    assert source.column("retrieval").null_count < source.num_rows  # the workload has retrieval steps
    store = DuckDBStore(sys.argv[1])
    ids = source.schema.field("trace_id")
    written = 0
    for k, size in enumerate((500, 2_000, 5_000, 9_000, 15_000, 700, 3_000, 11_000)):
        load = source.slice((k * 1_777) % (source.num_rows - size), size)
        # new trace ids per load (hex, as the store requires), so every load is new spans
        fresh = pc.binary_join_element_wise(pc.utf8_slice_codeunits(load.column("trace_id"), 0, 26),
                                            pa.scalar(f"{k:06x}"), pa.scalar(""))
        written += store.write(load.set_column(1, ids, fresh))
        if k == 4:
            store.checkpoint()
    (stored,) = store.query("SELECT count(*) FROM spans").to_pylist()[0].values()
    store.close()
    print(written, stored)
""")


def test_loads_under_a_row_group_commit_without_crashing_and_are_all_stored(tmp_path):
    done = subprocess.run([sys.executable, "-c", _LOADS, str(tmp_path / "data")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    written, stored = map(int, done.stdout.split())
    assert written == stored == 500 + 2_000 + 5_000 + 9_000 + 15_000 + 700 + 3_000 + 11_000
