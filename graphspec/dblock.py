"""One tune worker at a time opens a new database storage, so that workers started together do
not race to create Optuna's tables.

Optuna's `RDBStorage` creates its schema when it first opens a database: two workers doing so at
the same moment both insert the schema's version, and one fails with `UNIQUE constraint failed:
alembic_version.version_num` (SQLite) or a duplicate key (PostgreSQL). While a worker opens the
storage it holds a lock the others wait for: an `flock` on DATABASE.flock for SQLite (as on a
journal file's), a
session advisory lock for PostgreSQL (released when its connection closes, even if the worker
dies). Whatever the database, opening is also retried a few times when it fails on an
integrity error: by then the winner's schema is there.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from graphspec import flock

T = TypeVar("T")
# pg_advisory_lock's key: any 64-bit number that graphspec alone uses ("graphsp" in ASCII).
ADVISORY_KEY = 0x67726170687370
TRIES = 5


def open_exclusively(url: str, open_storage: Callable[[], T]) -> T:
    """`open_storage()` (which opens the database at `url`) with no other graphspec process
    opening the same database at the same time; retried when it fails on a schema race."""
    from sqlalchemy.exc import IntegrityError

    for attempt in range(TRIES):
        try:
            with _lock(url):
                return open_storage()
        except IntegrityError:
            if attempt == TRIES - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _lock(url: str) -> Iterator[None]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        yield  # Optuna says what is wrong with it
        return
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        with _file_lock(parsed.database):
            yield
    elif backend == "postgresql":
        with _advisory_lock(parsed):
            yield
    else:
        yield


@contextlib.contextmanager
def _file_lock(database: str | None) -> Iterator[None]:
    """An flock on `database`.flock: not on the database file itself, whose fcntl locks (SQLite's)
    a process loses when it closes any descriptor of that file. Nothing to lock for an
    in-memory database, or where the lock file cannot be made: SQLite then says why."""
    if not flock.AVAILABLE or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    lock = flock.FileLock(f"{database}.flock")
    try:
        lock.acquire()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def _advisory_lock(parsed) -> Iterator[None]:
    """PostgreSQL's session advisory lock ADVISORY_KEY, held on a connection of its own.
    Where that connection cannot be made, nothing is held: Optuna then says why."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(parsed, poolclass=NullPool)
    try:
        connection = engine.connect()
    except Exception:
        connection = None
    try:
        if connection is None:
            yield
            return
        with connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
            connection.commit()
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
                    connection.commit()
    finally:
        engine.dispose()
