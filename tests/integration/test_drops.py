"""What a training could not publish as given is shown with the run: the API's summary and listing, and
`epochstream analyze` and `epochstream runs` (a real Redis, the workers' drain, a real uvicorn API)."""

from __future__ import annotations

import httpx

from producer import Publisher, start_run
from tests.draining import drain_all
from tests.people.conftest import epochstream


def test_one_bad_name_one_none_and_one_string_are_the_three_drops_shown(settings, redis_client, api_server):
    publisher = Publisher(settings)
    with start_run(project="drops", name="bad-values", publisher=publisher) as run:
        run.log_epoch(0, {"train/loss": 0.4, "acc@1": 0.9, "val/loss": None, "val/accuracy": "0.5"}, samples=8)
        run.log_epoch(1, {"train/loss": 0.3, "val/loss": 0.5, "val/accuracy": 0.7}, samples=8)
    assert publisher.flush(10)
    publisher.close()
    drain_all(redis_client, settings, via_rq=True)
    api = api_server.base_url

    epochs = httpx.get(f"{api}/runs/{run.run_id}/epochs").json()["epochs"]
    assert [e["metrics"] for e in epochs] == [{"train/loss": 0.4, "acc_1": 0.9},  # the rest of the epoch arrived
                                              {"train/loss": 0.3, "val/loss": 0.5, "val/accuracy": 0.7}]
    summary = httpx.get(f"{api}/runs/{run.run_id}").json()
    assert summary["drops"]["counts"] == {"renamed": 1, "missing": 1, "not_a_number": 1}
    assert sum(summary["drops"]["counts"].values()) == 3 and summary["dropped"] == 2
    assert summary["drops"]["examples"] == ["'acc@1' renamed to 'acc_1'", "'val/loss' was None (epoch 0): dropped",
                                            "'val/accuracy' is not a number (epoch 0: '0.5', str): dropped"]
    [listed] = httpx.get(f"{api}/runs", params={"project": "drops"}).json()["runs"]
    assert listed["dropped"] == 2

    analyzed = epochstream(settings, "analyze", run.run_id, "--api", api)
    assert analyzed.returncode == 0, analyzed.stderr
    lines = analyzed.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("drops: "))
    assert lines[at] == "drops: 2 values dropped, 1 renamed (missing 1, not_a_number 1, renamed 1)"
    assert lines[at + 1:at + 4] == [f"  - {e}" for e in summary["drops"]["examples"]]

    table = epochstream(settings, "runs", "--project", "drops", "--api", api)
    assert table.returncode == 0 and "2 dropped" in table.stdout


def test_the_words_for_drops():
    from epochstream.cli.drops import drops_lines, with_drops

    assert drops_lines({}) == [] and drops_lines({"drops": {"counts": {}, "examples": []}}) == []
    assert drops_lines({"drops": {"counts": {"missing": 1}, "examples": ["'a' was None"]}, "dropped": 1}) == [
        "1 value dropped (missing 1)", "'a' was None"]
    assert drops_lines({"drops": {"counts": {"renamed": 4}}})[0] == "0 values dropped, 4 renamed (renamed 4)"
    assert with_drops("-", {"dropped": 3}) == "3 dropped"
    assert with_drops("plateau", {"dropped": 3}) == "plateau, 3 dropped"
    assert with_drops("plateau", {"dropped": 0}) == with_drops("plateau", {}) == "plateau"
