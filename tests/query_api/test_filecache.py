"""The read cache: parse once per file version, follow atomic replacements, and turn bad files into 503s."""

from __future__ import annotations

import anyio
import pytest

from epochstream.layout import atomic_write_bytes
from query_api.filecache import FileCache, ProjectionUnreadable


def test_parses_once_per_version_and_follows_renames(tmp_path):
    calls = []
    cache = FileCache(lambda fh: calls.append(1) or fh.read(), max_entries=4)
    path = tmp_path / "summary.json"
    assert cache.load(path) is None
    atomic_write_bytes(path, b"v1")
    assert anyio.run(cache.get, path)[1] == b"v1"
    assert anyio.run(cache.get, path)[1] == b"v1"
    assert len(calls) == 1
    key1 = anyio.run(cache.get, path)[0]
    atomic_write_bytes(path, b"v2")
    key2, value = anyio.run(cache.get, path)
    assert value == b"v2" and key2 != key1 and len(calls) == 2


def test_unparseable_file_is_a_transient_error(tmp_path):
    cache = FileCache(lambda fh: int(fh.read()), max_entries=4)
    path = tmp_path / "x"
    path.write_bytes(b"not a number")
    with pytest.raises(ProjectionUnreadable, match="retry"):
        cache.load(path)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_corrupt_projection_is_503_not_500(client, publisher, redis_client, settings, anyio_backend):
    from tests.query_api.pipeline import drain_all, losses, make_run

    run = make_run(publisher, "p", losses(3))
    drain_all(redis_client, settings)
    (settings.data_dir / "projections" / "runs" / run.run_id / "epochs.parquet").write_bytes(b"PAR1 garbage")
    resp = await client.get(f"/runs/{run.run_id}/epochs")
    assert resp.status_code == 503 and "retry" in resp.json()["detail"] and resp.headers["retry-after"] == "1"
