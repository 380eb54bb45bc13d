import pytest

from tests.otlp_builders import make_request
from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.duckdb_store import DuckDBStore


@pytest.fixture(params=["file", "memory"])
def store(request, tmp_path):
    """Every SpanStore backend; the conformance tests run against each."""
    s = DuckDBStore(tmp_path / "data" if request.param == "file" else ":memory:")
    yield s
    s.close()


def table_of(spans, **kwargs):
    return decode_request(make_request(spans, **kwargs).SerializeToString()).table
