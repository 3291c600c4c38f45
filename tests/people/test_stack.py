"""The stack's own logic, in-process: settings handed to children, the data-directory lock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from epochstream.errors import ConfigurationError
from epochstream.settings import Settings, settings_env
from epochstream.stack import Stack, StackAlreadyRunning, StackFailed, port_free, running_stack
from epochstream.stack.state import own_data_dir, release_data_dir, write_state


def test_children_get_exactly_the_settings(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("EPOCHSTREAM_")]:
        monkeypatch.delenv(key)
    settings = Settings(redis_url="redis://h:1/2", data_dir=Path("rel/data"), partitions=3, namespace="ns-1",
                        api_port=9001, api_token=SecretStr("s3cret"), system_interval_s=2.5)
    env = settings_env(settings, base={"PATH": "/bin", "EPOCHSTREAM_SPOOL_DIR": "/stale"})
    assert env["PATH"] == "/bin" and "EPOCHSTREAM_SPOOL_DIR" not in env  # unset in settings: unset for children
    assert env["EPOCHSTREAM_DATA_DIR"] == str(Path("rel/data").resolve())  # children may run elsewhere
    for key, value in env.items():
        if key.startswith("EPOCHSTREAM_"):
            monkeypatch.setenv(key, value)
    again = Settings()
    assert again.model_dump(exclude={"data_dir", "api_token"}) == settings.model_dump(exclude={"data_dir", "api_token"})
    assert again.api_token.get_secret_value() == "s3cret"


def test_one_stack_per_data_directory(tmp_path):
    data_dir = tmp_path / "d"
    assert running_stack(data_dir) is None
    first = own_data_dir(data_dir)
    try:
        write_state(data_dir, api_url="http://127.0.0.1:1", broker_url="redis://:pw@x/0", workers=1)
        assert running_stack(data_dir)["pid"] == os.getpid()
        assert (data_dir / "stack.json").stat().st_mode & 0o077 == 0  # it may hold a Redis password
        with pytest.raises(StackAlreadyRunning, match=f"already running on {data_dir}.*pid {os.getpid()}"):
            own_data_dir(data_dir)
    finally:
        release_data_dir(data_dir, first)
    assert running_stack(data_dir) is None
    release_data_dir(data_dir, own_data_dir(data_dir))  # free again once the first one stopped


def test_an_unusable_data_directory_is_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StackFailed, match="cannot use .*a-file as the data directory: File exists"):
        Stack(Settings(data_dir=tmp_path / "a-file"), say=lambda _: None).start()


def test_a_busy_api_port_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        stack = Stack(Settings(data_dir=tmp_path / "d", api_port=port), say=lambda _: None)
        with pytest.raises(StackFailed, match=f"port {port} on 127.0.0.1 is in use: pass --port"):
            stack.start()
    assert running_stack(tmp_path / "d") is None  # a failed start releases the lock


def test_ports_are_checked_for_the_address_family_of_the_host():
    import socket

    with socket.socket(socket.AF_INET6) as busy:
        try:
            busy.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
        busy.listen()
        port = busy.getsockname()[1]
        assert not port_free("::1", port)
    assert port_free("::1", port)  # an IPv6 host is no "port in use" just for being IPv6
    with pytest.raises(ConfigurationError, match="cannot listen on host 'no-such-host.invalid'"):
        port_free("no-such-host.invalid", 8000)
