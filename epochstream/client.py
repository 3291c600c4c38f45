"""A typed client of the read-only API, for notebooks and scripts (and the CLI's own commands).

    from epochstream.client import Client

    client = Client()                                   # the local stack, else EPOCHSTREAM_API_HOST/PORT
    runs = client.runs(project="resnet-sweep", status="completed")
    table = client.history([r.run_id for r in runs], metrics=["val/loss"])   # a pyarrow.Table, long
    df = table.to_pandas()                              # or polars.from_arrow(table): your choice
    best = client.best(runs[0].run_id)                  # the best epoch with all its metrics
    for epoch in client.follow(run_id):                 # each new epoch once, as the training logs it
        ...

History comes as Arrow (`?format=arrow`), so a long run never goes through JSON, and NaN and infinities
arrive as themselves. Every failure is one of the typed errors below, with a message that says what to do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx

from epochstream.errors import TerminalError, TransientError
from epochstream.settings import Settings
from query_api.limits import MAX_PAGE, MAX_STEP_ROWS  # the API's largest pages: longer reads go page by page
from schemas.read_models import RunSummary

STEP_PAGE = MAX_STEP_ROWS  # steps per request when a whole step history is read
_NON_FINITE = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}


class ApiUnreachable(TransientError):
    """Nothing answers at the API URL."""


class UnknownRun(TerminalError):
    """The API has no such run."""


class ApiError(TerminalError):
    """The API answered with an error."""


def default_url(settings: Settings) -> str:
    """A stack running on this data directory first (it may have picked its own port), else the settings."""
    from epochstream.stack import running_stack

    state = running_stack(Path(settings.data_dir))
    if state and state.get("api_url"):
        return str(state["api_url"])
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    return f"http://{host}:{settings.api_port}"


def restore(item: dict[str, Any], field: str = "metrics") -> dict[str, float | None]:
    """An answer item's values with every null that stood for NaN or an infinity put back."""
    values = dict(item.get(field) or {})
    for name, marker in (item.get("non_finite") or {}).items():
        if name in values:
            values[name] = _NON_FINITE[marker]
    return values


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 10.0,
                 settings: Settings | None = None):
        settings = settings if settings is not None else Settings()
        if token is None and settings.api_token is not None:
            token = settings.api_token.get_secret_value()
        self.base_url = (url or default_url(settings)).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the transport: every answer checked, every error ours ------------------------------------------
    def request(self, path: str, headers: dict[str, str] | None = None, timeout: float | None = None,
                **params: Any) -> httpx.Response:
        params = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._http.get(path, params=params, headers=headers,
                                      timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.TransportError:
            raise ApiUnreachable(f"cannot reach the epochstream API at {self.base_url}: start the stack with "
                                 f"`epochstream up` (or pass the URL of a running API)") from None
        if response.status_code == 404:
            raise UnknownRun(self._detail(response))
        if response.status_code in (401, 403):
            raise ApiError(f"the API at {self.base_url} refused the request: pass token= (or set "
                           f"EPOCHSTREAM_API_TOKEN) to the token the server was started with")
        if response.status_code >= 400:
            raise ApiError(f"the API answered {response.status_code} for {path}: {self._detail(response)}")
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request(path, **params).json()

    @staticmethod
    def _detail(response: httpx.Response) -> str:
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        if isinstance(detail, list):  # a 422: FastAPI's list of {loc, msg}
            detail = "; ".join(f"{e.get('loc', ['?'])[-1]}: {e.get('msg')}" if isinstance(e, dict) else str(e)
                               for e in detail)
        return str(detail) if detail else response.text[:200]

    # -- runs ------------------------------------------------------------------------------------------
    def run_rows(self, limit: int = 50, **params: Any) -> list[dict[str, Any]]:
        """Up to `limit` listing rows (as the API sends them), following its cursor past its largest page."""
        rows: list[dict[str, Any]] = []
        cursor = None
        while len(rows) < limit:
            page = self.get("/runs", limit=min(limit - len(rows), MAX_PAGE), cursor=cursor, **params)
            rows += page["runs"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return rows

    def runs(self, project: str | None = None, status: str | None = None, tag: str | None = None,
             limit: int = 50, **params: Any) -> list[RunSummary]:
        """Runs (newest first unless `sort=` says otherwise), as summaries with the listing's fields."""
        rows = self.run_rows(limit, project=project, status=status, tag=tag, **params)
        return [_summary_of_item(row) for row in rows]

    def runs_table(self, project: str | None = None, status: str | None = None, tag: str | None = None,
                   limit: int = 50, **params: Any):
        """The listing as a pyarrow.Table (one row per run)."""
        import pyarrow as pa

        rows = self.run_rows(limit, project=project, status=status, tag=tag, **params)
        return pa.Table.from_pylist([{**{k: v for k, v in row.items() if k != "non_finite"}, **_floats(row)}
                                     for row in rows])

    def run(self, run_id: str) -> RunSummary:
        """One run's whole summary (config, error, attempts, drops, trends)."""
        body = self.get(f"/runs/{run_id}")
        return RunSummary.model_validate({**body, **_floats(body)})

    def resolve(self, ref: str) -> dict[str, Any]:
        """The summary of run `ref` as the API sends it: a full run id, a unique prefix of one, or a unique
        run name."""
        import re

        from schemas.envelope import RUN_ID_PATTERN

        if re.fullmatch(RUN_ID_PATTERN, ref):  # anything else is no run id: never put it in a URL path
            try:
                return self.get(f"/runs/{ref}")
            except UnknownRun:
                pass
        matches = [r for r in self.run_rows(limit=MAX_PAGE)
                   if str(r.get("run_id", "")).startswith(ref) or r.get("name") == ref]
        if len(matches) == 1:
            return self.get(f"/runs/{matches[0]['run_id']}")
        if len(matches) > 1:
            ids = ", ".join(str(r["run_id"])[:12] for r in matches[:5])
            raise UnknownRun(f"{ref!r} matches {len(matches)} runs ({ids}): give more of the run id")
        raise UnknownRun(f"no run {ref!r} at {self.base_url} (`epochstream runs` lists the runs there are)")

    # -- history ---------------------------------------------------------------------------------------
    def history(self, run_ids: str | Iterable[str], metrics: Iterable[str] | None = None, since: int | None = None,
                max_points: int | None = None, kind: Literal["epoch", "step"] = "epoch"):
        """A long pyarrow.Table: run_id, epoch (or step), metric, value — NaN and infinities restored.

        Steps come page by page (the API's `limit`) unless `max_points` asks for a downsampled curve.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        from query_api.arrow_answers import schema

        ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        names = ",".join(metrics) if metrics else None
        tables = [schema(kind).empty_table()]
        for run_id in ids:
            if kind == "epoch":
                tables.append(self._arrow(f"/runs/{run_id}/epochs", since=since, metrics=names,
                                          max_points=max_points))
                continue
            after = since
            while True:
                page = self._arrow(f"/runs/{run_id}/steps", since=after, metrics=names, max_points=max_points,
                                   limit=STEP_PAGE)
                tables.append(page)
                steps = pc.unique(page.column("step"))
                if max_points is not None or len(steps) < STEP_PAGE:
                    break
                after = pc.max(steps).as_py()
        return pa.concat_tables(tables).combine_chunks()

    def _arrow(self, path: str, **params: Any):
        import pyarrow as pa

        data = self.request(path, format="arrow", **params).content
        return pa.ipc.open_stream(data).read_all()

    def best(self, run_id: str, metric: str | None = None, mode: str | None = None) -> dict[str, Any]:
        """{metric, mode, value, epoch, metrics} of the best epoch (the run's monitored metric by default)."""
        body = self.get(f"/runs/{run_id}/best", metric=metric, mode=mode)
        epoch = body.get("epoch")
        return {"metric": body["metric"], "mode": body["mode"], "value": body.get("value"),
                "epoch": epoch["epoch"] if epoch else None, "metrics": restore(epoch) if epoch else {}}

    def follow(self, run_id: str, wait: float = 25.0, since: int | None = None,
               until_finished: bool = True) -> Iterator[dict[str, Any]]:
        """Each new epoch of a run exactly once ({epoch, metrics, samples, ts}), as it arrives: long polls
        with `since` and the ETag, so an idle run costs one request per `wait` seconds. Ends once the run
        is no longer running and nothing newer is left (`until_finished=False`: never)."""
        last = -1 if since is None else since
        etag: str | None = None
        while True:
            headers = {"If-None-Match": etag} if etag else None
            response = self.request(f"/runs/{run_id}/epochs", headers=headers, timeout=wait + 10, since=last,
                                    wait=wait)
            new = []
            if response.status_code == 200:
                etag = response.headers.get("etag")
                new = [item for item in response.json()["epochs"] if item["epoch"] > last]
            for item in new:
                last = item["epoch"]
                yield _epoch(item)
            if new or not until_finished or self.get(f"/runs/{run_id}")["status"] == "running":
                continue
            for item in self.get(f"/runs/{run_id}/epochs", since=last)["epochs"]:  # logged with the finish
                yield _epoch(item)
            return


def _epoch(item: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": item["epoch"], "metrics": restore(item), "samples": item.get("samples"), "ts": item.get("ts")}


_TREND_FIELDS = ("recommendation", "reason", "is_overfitting", "is_plateaued", "is_diverging", "should_stop")


def _summary_of_item(row: dict[str, Any]) -> RunSummary:
    """A listing row as a RunSummary: its fields, its verdict in `trends` (the rest at their defaults)."""
    trends = {k: row[k] for k in _TREND_FIELDS if row.get(k) is not None}
    fields = {k: v for k, v in row.items() if k not in (*_TREND_FIELDS, "attempts", "non_finite")}
    return RunSummary.model_validate({**fields, **_floats(row), "trends": trends})


def _floats(item: dict[str, Any]) -> dict[str, float]:
    """The item's own floats that the API sent as null + marker (best_value, final_loss, ...), restored."""
    return {name: _NON_FINITE[marker] for name, marker in (item.get("non_finite") or {}).items()
            if name in item and "[" not in name}
