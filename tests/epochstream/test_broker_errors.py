"""Broker failures in our words (`epochstream.broker_errors`), from real servers: refused connections, wrong
credentials, a user without permissions; and the CLI shows them as one line, never redis-py's text alone."""

from __future__ import annotations

import pytest
import redis

from epochstream.broker import ServerProcess, free_port
from epochstream.broker_errors import BrokerRefused, broker_error, error_code
from epochstream.errors import BrokerUnavailable, ConfigurationError
from tests.people.conftest import epochstream, one_clear_line


@pytest.fixture
def acl_server(tmp_path):
    """A real server with a user that may only PING (as a producer-only user may not read streams)."""
    server = ServerProcess(directory=tmp_path / "acl").start()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "narrow", "on", ">secret", "resetkeys", "~*", "-@all", "+ping", "+hello")
    admin.close()
    yield server
    server.stop()


def raised(call) -> BaseException:
    with pytest.raises(redis.RedisError) as caught:
        call()
    return caught.value


def test_each_failure_gets_our_error_and_a_next_step(acl_server):
    dead = raised(lambda: redis.Redis(port=free_port(), socket_connect_timeout=1).ping())
    assert error_code(dead) == "CONNECTION"
    away = broker_error(dead)
    assert isinstance(away, BrokerUnavailable)  # transient: worth a retry
    assert "cannot reach Redis" in str(away) and "EPOCHSTREAM_REDIS_URL" in str(away)

    port = acl_server.port
    wrong = raised(lambda: redis.Redis.from_url(f"redis://narrow:nope@127.0.0.1:{port}/0").ping())
    assert error_code(wrong) == "AUTH"
    refused = broker_error(wrong)
    assert isinstance(refused, ConfigurationError) and "check the user and password" in str(refused)

    narrow = redis.Redis.from_url(f"redis://narrow:secret@127.0.0.1:{port}/0")
    assert narrow.ping()
    denied = raised(lambda: narrow.xrange("epochstream:dlq"))
    assert error_code(denied) == "NOPERM"
    told = broker_error(denied)
    assert isinstance(told, BrokerRefused) and "fuller user" in str(told)
    narrow.close()


def test_the_cli_shows_a_permission_error_as_one_line(settings, acl_server):
    url = f"redis://narrow:secret@127.0.0.1:{acl_server.port}/0"
    line = one_clear_line(epochstream(settings, "dlq", "list", env={"EPOCHSTREAM_REDIS_URL": url}))
    assert "may not do this" in line and "fuller user" in line
