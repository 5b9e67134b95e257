"""graphspec's own handshake on the coordinator's port, before JAX's distributed runtime takes it.

Process 0 listens on the coordinator's address (that address only) until the other N-1
processes have said who they are; each other process connects, retrying until the deadline
(process 0 may start last), and waits for process 0's answer. The exchange, one ASCII line each:

    process 0 -> joining:  graphspec-join-challenge NONCE        (32 hex digits, fresh per connection)
    joining -> process 0:  graphspec-join N I [MAC]              (MAC: 64 hex digits, with a token)
    process 0 -> joining:  ok  |  error REASON                   (ok once every process has joined)

With a shared join token (GRAPHSPEC_JOIN_TOKEN, or the file `--join-token-file` names), MAC is
HMAC-SHA256(token, "NONCE N I"): the token itself never crosses the network, a MAC answers one
nonce only, and process 0 refuses a greeting without the right one. Anything that is not this
grammar exactly (ASCII digits only) is refused and its connection closed; process 0 goes on
waiting. One deadline bounds the whole join, each greeting read included, and connections are
served together, so that none can hold the others up.

This authenticates the processes to process 0 only: it is not encryption, it does not
authenticate process 0 to the others, and it does not protect JAX's own traffic afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import selectors
import socket
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from graphspec.errors import SpecErrors

TOKEN_VARIABLE = "GRAPHSPEC_JOIN_TOKEN"
HELLO, CHALLENGE, OK, REFUSED = "graphspec-join", "graphspec-join-challenge", "ok", "error"
# A greeting is one short line: a connection that has not sent one within this many seconds is
# closed, whatever the join's own deadline, and at most this many are read at once.
GREETING_SECONDS = 5
MAX_PENDING = 64
_LINE = 256
_TOKEN_FILE_LIMIT = 4096
_PORT = re.compile(r"[0-9]{1,5}")
_GREETING = re.compile(rb"graphspec-join ([0-9]{1,6}) ([0-9]{1,6})(?: ([0-9a-f]{64}))?")
_CHALLENGE_LINE = re.compile(rb"graphspec-join-challenge ([0-9a-f]{32})")


@dataclass(frozen=True)
class Meeting:
    """Who meets whom: the coordinator's `host` and `port` (as `--coordinator` gave them, for
    messages), the number of processes, this one's id, the seconds the whole join may take, and
    the shared token (None: greetings are not authenticated)."""

    coordinator: str
    num_processes: int
    process_id: int
    timeout: float
    token: bytes | None = field(default=None, repr=False)


def address(coordinator: str) -> tuple[str, int]:
    """HOST and PORT of `--coordinator HOST:PORT` ([v6 address]:PORT for IPv6); the port in
    ASCII digits, 1 to 65535. Raises `SpecErrors` otherwise."""
    host, _, port = coordinator.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
        raise SpecErrors.single(
            f"--coordinator takes HOST:PORT, process 0's address and a free port; got '{coordinator}'",
            hint="for example --coordinator 10.0.0.1:1234",
        )
    return host, int(port)


def join_token(path: Path | None) -> bytes | None:
    """The shared join token: the content of the file at `path` (surrounding whitespace
    stripped), else the GRAPHSPEC_JOIN_TOKEN environment variable, else None. Raises
    `SpecErrors` for a file that is missing, not a regular file, over 4 KB or empty."""
    if path is None:
        value = os.environ.get(TOKEN_VARIABLE, "").strip()
        return value.encode() if value else None
    where = f"--join-token-file {path}"
    try:
        info = os.stat(path)
    except OSError as exc:
        raise SpecErrors.single(f"{where}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SpecErrors.single(f"{where}: not a regular file")
    if info.st_size > _TOKEN_FILE_LIMIT:
        raise SpecErrors.single(f"{where}: a join token file holds at most {_TOKEN_FILE_LIMIT} bytes")
    with open(path, "rb") as file:
        value = file.read(_TOKEN_FILE_LIMIT + 1).strip()
    if not value or len(value) > _TOKEN_FILE_LIMIT:
        raise SpecErrors.single(f"{where}: the file holds no token" if not value else f"{where}: too long")
    return value


def _mac(token: bytes, nonce: str, count: int, process_id: int) -> str:
    return hmac.new(token, f"{nonce} {count} {process_id}".encode(), hashlib.sha256).hexdigest()


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


def meet(meeting: Meeting, notice: Callable[[str], None] = _warn) -> str:
    """Every process of `meeting` meets process 0 before JAX does; returns the address process
    0 listened on ("HOST:PORT", for JAX's coordination service to bind the same). Raises
    `SpecErrors` when the join cannot complete within `meeting.timeout` seconds, when process 0
    refuses this process, or when process 0 cannot listen. `notice` hears, on process 0, each
    connection refused."""
    host, port = address(meeting.coordinator)
    deadline = time.monotonic() + meeting.timeout
    if meeting.process_id == 0:
        return gather(host, port, meeting, deadline, notice)
    report(host, port, meeting, deadline)
    return meeting.coordinator


# --- Process 0 ----------------------------------------------------------------------------------


def listen(host: str, port: int, coordinator: str) -> socket.socket:
    """A listening socket on `host` (resolved; its first address that binds) and `port`."""
    problem = "no address"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        infos, problem = [], exc.strerror or str(exc)
    for family, _, _, _, where in infos:
        try:
            return socket.create_server(where[:2] if family == socket.AF_INET else where, family=family)
        except OSError as exc:
            problem = os.strerror(exc.errno) if exc.errno else str(exc)
    raise SpecErrors.single(
        f"--coordinator {coordinator}: process 0 cannot listen on {host} port {port}: {problem}",
        hint="run process 0 on the machine with that address, and choose a free port",
    )


def bind_address(server: socket.socket) -> str:
    """ "HOST:PORT" of a bound socket ([v6]:PORT for IPv6), as gRPC takes it."""
    host, port = server.getsockname()[:2]
    return f"[{host}]:{port}" if server.family == socket.AF_INET6 else f"{host}:{port}"


@dataclass
class _Pending:
    nonce: str
    peer: str
    until: float
    data: bytes = b""


def gather(
    host: str, port: int, meeting: Meeting, deadline: float, notice: Callable[[str], None] = _warn
) -> str:
    """Process 0's side: wait until the other processes have joined, refusing (and noticing)
    every greeting that does not fit, then answer each "ok"; the address listened on."""
    server = listen(host, port, meeting.coordinator)
    bound = bind_address(server)
    joined: dict[int, socket.socket] = {}
    pending: dict[socket.socket, _Pending] = {}
    selector = selectors.DefaultSelector()

    def drop(connection: socket.socket, problem: str, answer: bool = True) -> None:
        state = pending.pop(connection)
        selector.unregister(connection)
        if answer:
            _send(connection, f"{REFUSED} {problem}")
        connection.close()
        notice(f"process 0 refused a connection from {state.peer}: {problem}")

    try:
        with server, selector:
            server.setblocking(False)
            selector.register(server, selectors.EVENT_READ)
            while len(joined) < meeting.num_processes - 1:
                now = time.monotonic()
                if now >= deadline:
                    raise _not_joined(meeting, joined)
                for connection in [c for c, state in pending.items() if state.until <= now]:
                    drop(connection, f"no greeting within {GREETING_SECONDS} s")
                wake = min([deadline, *(state.until for state in pending.values())])
                for key, _ in selector.select(max(wake - now, 0)):
                    if key.fileobj is server:
                        _accept(server, pending, selector, deadline)
                        continue
                    connection = key.fileobj
                    state = pending[connection]
                    try:
                        chunk = connection.recv(_LINE)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        drop(connection, "closed without a greeting", answer=False)
                        continue
                    state.data += chunk
                    line, newline, _ = state.data.partition(b"\n")
                    if not newline:
                        if len(state.data) > _LINE:
                            drop(connection, "not a graphspec process")
                        continue
                    problem, process_id = check_greeting(line, meeting, state.nonce, joined)
                    if problem is not None:
                        drop(connection, problem)
                        continue
                    pending.pop(connection)
                    selector.unregister(connection)
                    joined[process_id] = connection
            for connection in pending:
                connection.close()
            pending.clear()
            for connection in joined.values():
                connection.setblocking(True)
                _send(connection, OK)
            # Each process closes first, so the port is left free for JAX's service at once.
            for connection in joined.values():
                connection.settimeout(GREETING_SECONDS)
                with contextlib.suppress(OSError):
                    connection.recv(1)
    finally:
        for connection in [*joined.values(), *pending]:
            connection.close()
    return bound


def _accept(
    server: socket.socket, pending: dict[socket.socket, _Pending], selector: selectors.BaseSelector, deadline
) -> None:
    try:
        connection, peer = server.accept()
    except (BlockingIOError, InterruptedError):
        return
    if len(pending) >= MAX_PENDING:
        # Too many greetings under way at once: this one tries again (processes retry).
        connection.close()
        return
    connection.setblocking(False)
    nonce = secrets.token_hex(16)
    state = _Pending(nonce, _peer(peer), min(time.monotonic() + GREETING_SECONDS, deadline))
    pending[connection] = state
    selector.register(connection, selectors.EVENT_READ)
    _send(connection, f"{CHALLENGE} {nonce}")


def _peer(peer: tuple) -> str:
    host, port = peer[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_greeting(line: bytes, meeting: Meeting, nonce: str, joined: dict) -> tuple[str | None, int]:
    """What is wrong with a joining process's greeting `line` (None: nothing) and its id (-1
    when wrong), answering challenge `nonce`, with processes `joined` already."""
    match = _GREETING.fullmatch(line.removesuffix(b"\r"))
    if match is None:
        return "not a graphspec process", -1
    count, process_id = int(match[1]), int(match[2])
    mac = match[3].decode() if match[3] else None
    if meeting.token is not None:
        if mac is None:
            return (
                f"process 0 needs a join token: start every process with the same "
                f"{TOKEN_VARIABLE} or --join-token-file",
                -1,
            )
        if not hmac.compare_digest(mac, _mac(meeting.token, nonce, count, process_id)):
            return "the join token does not match process 0's", -1
    elif mac is not None:
        return (
            f"process 0 has no join token: start every process with the same {TOKEN_VARIABLE} "
            "or --join-token-file, or none",
            -1,
        )
    if count != meeting.num_processes:
        return f"process 0 was started with --num-processes {meeting.num_processes}, not {count}", -1
    if not 0 < process_id < meeting.num_processes:
        return f"process id {process_id} is not one of 1..{meeting.num_processes - 1}", -1
    if process_id in joined:
        return f"process {process_id} has already joined: each process needs an id of its own", -1
    return None, process_id


def _not_joined(meeting: Meeting, joined: dict) -> SpecErrors:
    missing = sorted(set(range(1, meeting.num_processes)) - set(joined))
    return SpecErrors.single(
        f"--coordinator {meeting.coordinator}: {len(joined) + 1} of "
        f"{meeting.num_processes} processes joined within {meeting.timeout:g} s; "
        f"no word from process{'es' if len(missing) > 1 else ''} "
        f"{', '.join(map(str, missing))}",
        hint="start every process with the same --coordinator and --num-processes, "
        "or give more time with --join-timeout",
    )


# --- The other processes ------------------------------------------------------------------------


def report(host: str, port: int, meeting: Meeting, deadline: float) -> None:
    """A joining process's side: greet process 0 and wait for its answer, all before `deadline`."""
    last = "nothing listens there"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SpecErrors.single(
                f"--coordinator {meeting.coordinator}: process 0 could not be reached within "
                f"{meeting.timeout:g} s ({last})",
                hint="start process 0 there (it listens on that port), or give more time with --join-timeout",
            )
        try:
            connection = socket.create_connection((host, port), timeout=min(left, GREETING_SECONDS))
        except OSError as exc:
            last = exc.strerror or str(exc) or type(exc).__name__
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
            continue
        with connection:
            try:
                challenge = receive(connection, deadline)
            except TimeoutError:
                raise _no_answer(meeting) from None
            except OSError:
                challenge = b""
            if not challenge:
                # Process 0 closed at once (too many greetings under way): try again.
                last = "process 0 closed the connection"
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
                continue
            match = _CHALLENGE_LINE.fullmatch(challenge)
            if match is None:
                raise _refused(meeting, "what answered is not a graphspec process")
            nonce = match[1].decode()
            greeting = f"{HELLO} {meeting.num_processes} {meeting.process_id}"
            if meeting.token is not None:
                greeting += " " + _mac(meeting.token, nonce, meeting.num_processes, meeting.process_id)
            _send(connection, greeting)
            try:
                answer = receive(connection, deadline).decode("ascii", "replace")
            except TimeoutError:
                raise _no_answer(meeting) from None
            except OSError:
                answer = ""
        if answer == OK:
            return
        if answer.startswith(REFUSED + " "):
            reason = "".join(c if c.isprintable() else "?" for c in answer[len(REFUSED) + 1 :])
        elif not answer:
            reason = "it closed the connection without an answer (see its error)"
        else:
            reason = "what answered is not a graphspec process"
        raise _refused(meeting, reason)


def _no_answer(meeting: Meeting) -> SpecErrors:
    return SpecErrors.single(
        f"--coordinator {meeting.coordinator}: process 0 was still waiting for the "
        f"other processes after {meeting.timeout:g} s",
        hint="start every process with the same --coordinator and --num-processes, "
        "or give more time with --join-timeout",
    )


def _refused(meeting: Meeting, reason: str) -> SpecErrors:
    return SpecErrors.single(
        f"--coordinator {meeting.coordinator}: process 0 refused process {meeting.process_id}: {reason}"
    )


def _send(connection: socket.socket, line: str) -> None:
    with contextlib.suppress(OSError):
        connection.sendall((line + "\n").encode())


def receive(connection: socket.socket, deadline: float, limit: int = _LINE) -> bytes:
    """One line from `connection` (at most `limit` bytes, without its newline), all of it
    before `deadline` (`time.monotonic()`), else TimeoutError; empty at end of stream."""
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        connection.settimeout(left)
        chunk = connection.recv(limit - len(data))
        if not chunk:
            break
        data += chunk
    return data.rstrip(b"\r\n")
