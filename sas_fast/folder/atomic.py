"""The only place the folder job writes: :class:`OutputTree`, files below one real folder, each atomically.

Rules, enforced on every write:

* a file is written to a temporary file (``TMP_PREFIX``…) in its final folder and renamed into
  place (``os.replace``), so a killed run leaves whole files or none; temporaries left by a killed
  run are removed by :meth:`OutputTree.sweep`;
* the path is a safe relative path (:func:`sas_fast.folder.paths.relative_path`), and every folder
  on the way is opened relative to its parent with ``O_NOFOLLOW``: a symbolic link (or a file) where
  a folder is expected is refused (:class:`UnsafePath`), never followed out of the tree.  A link
  *at* the file's own name is replaced by the new file, not written through; appends
  (:meth:`OutputTree.append`) refuse a link outright.
* :meth:`OutputTree.sweep` refuses a tree that holds any symbolic link at all, so a run never
  starts on such a tree.

Files are not fsync'ed (speed): this protects against killed processes, not power loss.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from .errors import UnsafePath
from .paths import relative_path, shown

__all__ = ["TMP_PREFIX", "OutputTree"]

TMP_PREFIX = ".sas_tmp_"

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: Folder-relative system calls (Linux, macOS, BSD); elsewhere the checks fall back to lstat per component.
_AT_CALLS = os.open in os.supports_dir_fd and os.mkdir in os.supports_dir_fd and _NOFOLLOW != 0


class OutputTree:
    """Files below the real folder ``root`` (which must exist), written as the module docstring says."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(os.path.realpath(root))

    # -- writing -------------------------------------------------------------------------------

    def write(self, rel: str, data: bytes) -> None:
        """Write ``root/rel`` atomically, creating its folders; refuses links and unsafe paths."""
        *folders, name = relative_path(rel, "output path").split("/")
        if not _AT_CALLS:
            return self._write_by_path(folders, name, data)
        fd = self._open_folder(folders)
        tmp = f"{TMP_PREFIX}{secrets.token_hex(8)}.tmp"
        try:
            handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                             0o666, dir_fd=fd)
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=fd)
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)

    @contextmanager
    def append(self, rel: str) -> Iterator[TextIO]:
        """A UTF-8 text stream appending to ``root/rel`` (created if missing; a link there is refused)."""
        *folders, name = relative_path(rel, "output path").split("/")
        if _AT_CALLS:
            fd = self._open_folder(folders)
            try:
                handle = self._refuse_link(
                    lambda: os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o666, dir_fd=fd),
                    "/".join([*folders, name]),
                )
            finally:
                os.close(fd)
        else:
            path = self._folder_by_path(folders) / name
            if path.is_symlink():
                raise self._link_error("/".join([*folders, name]))
            handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        with os.fdopen(handle, "a", encoding="utf-8", newline="\n") as stream:
            yield stream

    # -- the whole tree ------------------------------------------------------------------------

    def sweep(self) -> None:
        """Remove stray temporaries; refuse (:class:`UnsafePath`) a tree holding a symbolic link."""
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            here = Path(dirpath)
            for name in dirnames + filenames:
                if (here / name).is_symlink():
                    raise self._link_error((here / name).relative_to(self.root).as_posix())
            for name in filenames:
                if name.startswith(TMP_PREFIX):
                    (here / name).unlink(missing_ok=True)

    def files(self, folder: str) -> Iterator[str]:
        """Relative paths of the regular files below ``root/folder`` (links not followed), temporaries left out."""
        top = self.root / folder
        if not top.is_dir() or top.is_symlink():
            return
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath, name)
                if not name.startswith(TMP_PREFIX) and path.is_file() and not path.is_symlink():
                    yield path.relative_to(self.root).as_posix()

    def probe(self) -> None:
        """Check that files can be created in ``root`` (``OSError`` if not)."""
        self.write(f"{TMP_PREFIX}probe", b"")
        (self.root / f"{TMP_PREFIX}probe").unlink(missing_ok=True)

    # -- helpers -------------------------------------------------------------------------------

    def _link_error(self, rel: str) -> UnsafePath:
        return UnsafePath(
            f"{shown(self.root / rel)} is a symbolic link (or not a folder) inside the output folder; sas-fast "
            "never writes through links: remove it or use a new output folder"
        )

    def _refuse_link(self, call, rel: str) -> int:
        try:
            return call()
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                raise self._link_error(rel) from None
            raise

    def _open_folder(self, folders: list[str]) -> int:
        """A descriptor of ``root/folders`` (created as needed), each step opened with ``O_NOFOLLOW``."""
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for i, name in enumerate(folders):
                try:
                    os.mkdir(name, dir_fd=fd)
                except FileExistsError:
                    pass
                sub = self._refuse_link(
                    lambda: os.open(name, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd), "/".join(folders[: i + 1])
                )
                os.close(fd)
                fd = sub
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _folder_by_path(self, folders: list[str]) -> Path:
        folder = self.root
        for i, name in enumerate(folders):
            folder = folder / name
            try:
                folder.mkdir()
            except FileExistsError:
                pass
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                raise self._link_error("/".join(folders[: i + 1]))
        return folder

    def _write_by_path(self, folders: list[str], name: str, data: bytes) -> None:
        folder = self._folder_by_path(folders)
        tmp = folder / f"{TMP_PREFIX}{secrets.token_hex(8)}.tmp"
        try:
            with open(tmp, "xb") as out:
                out.write(data)
            os.replace(tmp, folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
