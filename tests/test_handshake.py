"""graphspec's handshake before a multi-process run (graphspec/handshake.py), on loopback: a
greeting that does not fit is refused without ending process 0, one deadline bounds the whole
join, processes prove they know the join token, and process 0 listens on its address only.

Each side runs in a thread of the test process (no JAX, no training); every wait is bounded
by the join's own timeout, a few seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from graphspec.errors import SpecErrors
from graphspec.handshake import CHALLENGE, HELLO, Meeting, check_greeting, listen, meet


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _meeting(port: int, process_id: int, timeout: float = 10, token: bytes | None = None) -> Meeting:
    return Meeting(f"127.0.0.1:{port}", 2, process_id, timeout, token)


def _message(exc: SpecErrors) -> str:
    return exc.diagnostics.errors[0].message


def _connect(port: int, seconds: float = 10) -> socket.socket:
    """A raw connection to process 0, retried until it listens (at most `seconds`)."""
    until = time.monotonic() + seconds
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=seconds)
        except ConnectionRefusedError:
            if time.monotonic() > until:
                raise
            time.sleep(0.05)


def _line(connection: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(256)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def test_a_bad_greeting_is_refused_and_process_0_goes_on_waiting():
    port = _free_port()
    notices: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        zero = pool.submit(meet, _meeting(port, 0), notices.append)
        with _connect(port) as rogue:
            assert _line(rogue).startswith(f"{CHALLENGE} ")
            # str.isdigit() accepts '²', int() does not: the grammar takes ASCII digits only.
            rogue.sendall(f"{HELLO} ² 1\n".encode())
            assert _line(rogue) == "error not a graphspec process"
        one = pool.submit(meet, _meeting(port, 1))
        assert zero.result(timeout=20) == f"127.0.0.1:{port}"
        assert one.result(timeout=20) == f"127.0.0.1:{port}"
    assert len(notices) == 1
    assert notices[0].startswith("process 0 refused a connection from 127.0.0.1:")
    assert notices[0].endswith(": not a graphspec process")


def _dribble(port: int, stop: threading.Event) -> None:
    """A client that sends one byte of a greeting at a time, slowly, until told to stop or
    process 0 closes the connection (at most 1,100 bytes: minutes, unless process 0 gives up)."""
    with _connect(port) as connection:
        _line(connection)
        for byte in f"{HELLO} 2 1".encode() * 100:
            if stop.wait(0.2):
                return
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                return


def test_a_slow_greeting_cannot_hold_process_0_past_the_join_deadline():
    port = _free_port()
    stop = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        zero = pool.submit(meet, _meeting(port, 0, timeout=2), lambda line: None)
        slow = pool.submit(_dribble, port, stop)
        try:
            with pytest.raises(SpecErrors) as caught:
                zero.result(timeout=30)
        finally:
            stop.set()
        slow.result(timeout=30)
    assert _message(caught.value) == (
        f"--coordinator 127.0.0.1:{port}: 1 of 2 processes joined within 2 s; no word from process 1"
    )


def test_a_slow_greeting_does_not_hold_up_a_process_that_joins():
    port = _free_port()
    stop = threading.Event()
    with ThreadPoolExecutor(3) as pool:
        zero = pool.submit(meet, _meeting(port, 0, timeout=20), lambda line: None)
        slow = pool.submit(_dribble, port, stop)
        time.sleep(0.3)  # the slow client connects first (the outcome does not depend on it)
        one = pool.submit(meet, _meeting(port, 1, timeout=20))
        try:
            assert zero.result(timeout=30) == f"127.0.0.1:{port}"
            one.result(timeout=30)
        finally:
            stop.set()
        slow.result(timeout=30)


@pytest.mark.parametrize(
    ("token_0", "token_1", "reason"),
    [
        (b"right", b"wrong", "the join token does not match process 0's"),
        (
            b"right",
            None,
            "process 0 needs a join token: start every process with the same GRAPHSPEC_JOIN_TOKEN "
            "or --join-token-file",
        ),
        (
            None,
            b"right",
            "process 0 has no join token: start every process with the same GRAPHSPEC_JOIN_TOKEN "
            "or --join-token-file, or none",
        ),
    ],
    ids=["wrong", "missing", "unexpected"],
)
def test_a_process_without_the_join_token_is_refused(token_0, token_1, reason):
    port = _free_port()
    with ThreadPoolExecutor(2) as pool:
        zero = pool.submit(meet, _meeting(port, 0, timeout=3, token=token_0), lambda line: None)
        one = pool.submit(meet, _meeting(port, 1, timeout=3, token=token_1))
        with pytest.raises(SpecErrors) as refused:
            one.result(timeout=30)
        with pytest.raises(SpecErrors) as alone:
            zero.result(timeout=30)
    assert _message(refused.value) == (
        f"--coordinator 127.0.0.1:{port}: process 0 refused process 1: {reason}"
    )
    assert "1 of 2 processes joined within 3 s" in _message(alone.value)


def test_processes_with_the_same_token_join():
    port = _free_port()
    with ThreadPoolExecutor(2) as pool:
        zero = pool.submit(meet, _meeting(port, 0, token=b"s3cret"), lambda line: None)
        one = pool.submit(meet, _meeting(port, 1, token=b"s3cret"))
        assert zero.result(timeout=30) == f"127.0.0.1:{port}"
        one.result(timeout=30)


def test_the_token_never_crosses_the_network_only_a_mac_of_the_challenge():
    """A stand-in process 0 reads what process 1 sends: the HMAC of its challenge, not the token."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with ThreadPoolExecutor(1) as pool:
            one = pool.submit(meet, _meeting(port, 1, timeout=10, token=b"s3cret"))
            connection, _ = server.accept()
            with connection:
                connection.sendall(f"{CHALLENGE} {'ab' * 16}\n".encode())
                greeting = _line(connection)
                connection.sendall(b"ok\n")
            one.result(timeout=30)
    mac = hmac.new(b"s3cret", f"{'ab' * 16} 2 1".encode(), hashlib.sha256).hexdigest()
    assert greeting == f"{HELLO} 2 1 {mac}"
    assert "s3cret" not in greeting


@pytest.mark.parametrize(
    "line",
    [
        f"{HELLO} ² 1",
        f"{HELLO} 2 ¹",
        f"{HELLO} ２ 1",  # a full-width digit
        f"{HELLO} 2 1 extra",
        f"{HELLO}  2 1",
        f"{HELLO} -2 1",
        f"{HELLO} 2 1 {'A' * 64}",  # a MAC is lower-case hex
        "GET / HTTP/1.1",
        "",
    ],
)
def test_only_the_greeting_grammar_is_accepted(line):
    meeting = Meeting("127.0.0.1:8476", 2, 0, 10)
    assert check_greeting(line.encode(), meeting, "00" * 16, {}) == ("not a graphspec process", -1)


def test_process_0_listens_on_the_coordinators_address_only():
    port = _free_port()
    with listen("127.0.0.1", port, f"127.0.0.1:{port}") as server:
        assert server.getsockname() == ("127.0.0.1", port)
        # Linux routes all of 127/8 to the loopback: another of its addresses finds no listener.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", port), timeout=5).close()
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_an_address_that_is_not_this_machines_cannot_be_listened_on():
    port = _free_port()
    with pytest.raises(SpecErrors) as caught:
        listen("192.0.2.1", port, f"192.0.2.1:{port}")  # TEST-NET-1, never local
    assert _message(caught.value) == (
        f"--coordinator 192.0.2.1:{port}: process 0 cannot listen on 192.0.2.1 port {port}: "
        "Cannot assign requested address"
    )


def test_the_join_token_comes_from_the_file_named_else_the_environment(tmp_path, monkeypatch):
    from graphspec.handshake import join_token

    monkeypatch.delenv("GRAPHSPEC_JOIN_TOKEN", raising=False)
    assert join_token(None) is None
    monkeypatch.setenv("GRAPHSPEC_JOIN_TOKEN", "from-the-environment")
    assert join_token(None) == b"from-the-environment"
    token = tmp_path / "token"
    token.write_text("  from-the-file\n")
    assert join_token(token) == b"from-the-file"  # the file wins, whitespace stripped


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("\n", "the file holds no token"),
        ("x" * 5000, "a join token file holds at most 4096 bytes"),
        (None, "not a regular file"),
    ],
    ids=["empty", "too-long", "folder"],
)
def test_a_join_token_file_that_holds_no_usable_token_is_refused(tmp_path, content, message):
    from graphspec.handshake import join_token

    token = tmp_path / "token"
    if content is None:
        token.mkdir()
    else:
        token.write_text(content)
    with pytest.raises(SpecErrors) as caught:
        join_token(token)
    assert _message(caught.value) == f"--join-token-file {token}: {message}"
