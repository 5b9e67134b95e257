"""Files written whole or not at all, readable as any new file of the user's is, and refused with
one clear error where they cannot be written.

Every file graphspec writes (`build -o`, `plot -o`, `export -o`, a run directory's files, a
tune's reports) goes through `replacing`: the new content is written to a temporary file beside
the target, `.NAME.partial.EXT` (the ending kept, since Keras and Matplotlib choose the format by
it), and renamed onto the target only once it is complete. So the target holds its old content
until the new one is whole, and a kill at any moment leaves at most the temporary file, which the
next write of the same target takes over (the name is fixed so that none accumulate). Writers of
the same target take turns: each holds an `flock` on the temporary file while it writes it.

A write that cannot happen (the target is a folder, a folder on the way is a file, no
permission, a file system that takes no files such as /proc) raises `SpecErrors` with one line
saying why, and leaves nothing behind: no temporary file, no folder made for it.

No TensorFlow here.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from graphspec.errors import SpecErrors

try:
    import fcntl
except ImportError:  # Windows: writers of one target are not serialised
    fcntl = None

PARTIAL = ".partial"
# Endings made of two suffixes that a writer reads as one (Keras: weights files).
_DOUBLE_ENDINGS = (".weights.h5",)


def partial_path(path: str | os.PathLike) -> Path:
    """The temporary file a write of `path` goes through: `.NAME.partial.EXT` in the same folder
    (`model.keras` -> `.model.partial.keras`, `e3.weights.h5` -> `.e3.partial.weights.h5`)."""
    path = Path(path)
    name = path.name
    ending = next((e for e in _DOUBLE_ENDINGS if name.endswith(e)), None)
    if ending is None or ending == name:
        ending = os.path.splitext(name)[1]
    return path.with_name(f".{name[: len(name) - len(ending)]}{PARTIAL}{ending}")


def check_target(path: str | os.PathLike) -> Path:
    """`path` as a Path, if a file can be written there as far as can be told without writing;
    else `SpecErrors` saying why (see `unwritable`). Cheap: callers check their output before
    long work."""
    path = Path(path)
    reason = unwritable(path)
    if reason is not None:
        raise _error(path, reason)
    return path


def unwritable(path: Path) -> str | None:
    """Why nothing can be written at `path`, as far as can be told without writing: it is a
    folder, a folder on its way is a file, or the nearest existing folder cannot be written
    in; None when nothing is known against it."""
    if path.is_dir():
        return "it is a folder"
    folder = path.parent
    for ancestor in (folder, *folder.parents):
        try:
            mode = os.stat(ancestor).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue  # missing (it will be made), or under a file, which is found further up
        except OSError as exc:
            return f"cannot reach {ancestor} ({exc.strerror})"
        if not stat.S_ISDIR(mode):
            return f"{ancestor} is a file, not a folder"
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return f"cannot create a file in {ancestor} ({os.strerror(errno.EACCES)})"
        return None
    return None


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Write `path` through the temporary file this yields: write it by name (Keras, Matplotlib),
    and when the block ends without an error it is renamed onto `path`. On an error it is removed,
    with any folder made for it, and `path` keeps its old content; an `OSError` becomes
    `SpecErrors`. Folders missing on the way are made. The file gets the mode a new file of the
    user's gets (0666 less the umask)."""
    with _partial(Path(path)) as (temporary, _):
        yield temporary


def check_folder(path: str | os.PathLike) -> Path:
    """`path` as a Path, if `replacing_folder` can write the folder there as far as can be told
    without writing; else `SpecErrors` saying why. Cheap: callers check before long work."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise _error(path, "it is in the way and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        raise _error(path, "it is a folder with files in it", hint="remove it or choose another folder")
    # The temporary folder is made beside `path`: its parent must take new entries.
    reason = None if path.is_dir() else unwritable(path)
    if path.is_dir() and not os.access(path.parent, os.W_OK | os.X_OK):
        reason = f"cannot create a folder in {path.parent} ({os.strerror(errno.EACCES)})"
    if reason is not None:
        raise _error(path, reason)
    return path


# The file that marks a temporary folder as graphspec's own (and holds the writer's lock), so that
# only a folder a killed write left is taken over: any other folder of that name is refused.
FOLDER_MARK = ".graphspec-partial"


@contextmanager
def replacing_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Write the folder `path` through the temporary folder this yields, `.NAME.partial` beside
    it: when the block ends without an error it is renamed onto `path`; on an error it is
    removed, with any folder made for it, and nothing is left. `path` must not exist or be an
    empty folder (see `check_folder`). A temporary folder that a killed write left is taken
    over; one graphspec did not make (no mark in it), a file or a link there is refused, and so
    is a second writer of the same folder while the first writes."""
    path = check_folder(path)
    temporary = path.with_name(f".{path.name}{PARTIAL}")
    made = _make_folders(path, path.parent)
    fd = None
    try:
        fd = _take_folder(path, temporary)
        try:
            yield temporary
            os.unlink(temporary / FOLDER_MARK)  # the lock stays held on the open descriptor
            os.replace(temporary, path)  # rename(2) replaces an empty folder too
        except BaseException as exc:
            shutil.rmtree(temporary, ignore_errors=True)
            if isinstance(exc, OSError):
                raise _error(path, exc.strerror or str(exc)) from None
            raise
    except BaseException:
        _remove_folders(made)
        raise
    finally:
        if fd is not None:
            os.close(fd)


def _take_folder(path: Path, temporary: Path) -> int:
    """Make the temporary folder `temporary` (or take over the one a killed write left), with
    its mark locked; the mark's open descriptor."""
    if temporary.is_symlink() or (temporary.exists() and not temporary.is_dir()):
        raise _error(path, f"{temporary} is in the way and is not a folder")
    if temporary.is_dir():
        if not (temporary / FOLDER_MARK).is_file() or (temporary / FOLDER_MARK).is_symlink():
            raise _error(path, f"{temporary} is in the way, and graphspec did not make it")
        fd = os.open(temporary / FOLDER_MARK, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        if not _try_lock(fd):
            os.close(fd)
            raise _error(path, "another graphspec process is writing it")
        # A killed write's folder: emptied and reused, the lock held throughout.
        for entry in temporary.iterdir():
            if entry.name != FOLDER_MARK:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        return fd
    try:
        temporary.mkdir()
        fd = os.open(temporary / FOLDER_MARK, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _error(path, f"cannot create a folder in {path.parent} ({exc.strerror or exc})") from None
    if not _try_lock(fd):  # another writer took it over between the two calls above
        os.close(fd)
        raise _error(path, "another graphspec process is writing it")
    return fd


def _try_lock(fd: int) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (see `replacing`)."""
    with _partial(Path(path)) as (_, fd):
        _write_all(fd, data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` as UTF-8, line endings as given, whole or not at all."""
    write_bytes(path, text.encode("utf-8"))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@contextmanager
def _partial(path: Path) -> Iterator[tuple[Path, int]]:
    path = check_target(path)
    temporary = partial_path(path)
    made = _make_folders(path, path.parent)
    fd = None
    try:
        try:
            fd = _open_locked(temporary)
        except OSError as exc:
            raise _error(path, f"cannot create a file in {path.parent} ({exc.strerror or exc})") from None
        try:
            yield temporary, fd
            # The data reaches the disk before the name does: after a crash the target is the
            # old file or the new one, never an empty one.
            os.fsync(fd)
            os.replace(temporary, path)
        except BaseException as exc:
            # The lock is still held: no other writer can have taken the temporary file over.
            _unlink(temporary)
            if isinstance(exc, OSError):
                raise _error(path, exc.strerror or str(exc)) from None
            raise
    except BaseException:
        _remove_folders(made)
        raise
    finally:
        if fd is not None:
            os.close(fd)


def _open_locked(temporary: Path) -> int:
    """An open descriptor of `temporary`, created or taken over from a killed write, locked,
    emptied and given the umask's mode. A symbolic link there is refused, never followed."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        fd = os.open(temporary, flags, 0o666)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                raise OSError(errno.EEXIST, f"{temporary} is in the way and is not a file")
            try:
                named = os.stat(temporary, follow_symlinks=False)
            except FileNotFoundError:
                named = None
            # While this waited for the lock, the writer before it may have renamed the file onto
            # its target (or removed it): then this descriptor is not the temporary file any more.
            if named is not None and (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino):
                os.ftruncate(fd, 0)
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, 0o666 & ~umask())
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    # Linux shows the umask without changing it; elsewhere it is read by setting it back at once.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _make_folders(path: Path, folder: Path) -> list[Path]:
    """Make `folder` and the folders above it that are missing; the ones made, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made: list[Path] = []
    for each in reversed(missing):
        try:
            each.mkdir()
        except FileExistsError:
            continue  # another writer made it meanwhile
        except OSError as exc:
            _remove_folders(made)
            raise _error(path, f"cannot create folder {each} ({exc.strerror or exc})") from None
        made.append(each)
    return made


def _remove_folders(made: list[Path]) -> None:
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:  # something else was put there meanwhile: it stays
            return


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _error(path: Path, reason: str, hint: str | None = None) -> SpecErrors:
    return SpecErrors.single(f"cannot write {path}: {reason}", hint=hint)
