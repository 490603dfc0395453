"""Path rules of the folder job: which names are accepted, how they are shown, which folders may overlap.

Every rule about *where* sas-fast reads and writes lives here (the writing itself is
:mod:`sas_fast.folder.atomic`):

* folders are compared by their real paths (``os.path.realpath``: symbolic links and ``..``
  resolved), and the input and output trees must be disjoint both ways (:func:`check_disjoint`);
* a relative path taken from a file (the manifest) must be relative and stay inside its folder:
  no absolute path, no ``..`` or ``.`` component, no empty component, no NUL, encodable as a file
  name (:func:`relative_path`);
* an input file whose real path lies inside the output tree is refused (:func:`inside`), so no
  output can replace what an input link points to;
* names are printed escaped (:func:`shown`): a newline, a control character or an undecodable
  byte in a file name never breaks a one-line message or the output encoding.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UnsafePath

__all__ = ["check_disjoint", "inside", "real", "relative_path", "shown"]


def shown(text: object) -> str:
    """``text`` printable on one line: control characters escaped (``\\n``), undecodable file-name bytes as ``\\xNN``."""
    text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ascii(ch)[1:-1])
    return "".join(out)


def real(path: str | os.PathLike) -> Path:
    """The real absolute path of ``path`` (links and ``..`` resolved; missing tail components kept)."""
    return Path(os.path.realpath(path))


def inside(path: Path, root: Path) -> bool:
    """Whether real path ``path`` is ``root`` or below it."""
    return path == root or root in path.parents


def check_disjoint(inputs: Path, outputs: Path, *, what: str = "output folder") -> None:
    """Refuse an output tree that is, contains or lies inside the input tree (real paths)."""
    a, b = real(inputs), real(outputs)
    if a == b:
        raise UnsafePath(f"the {what} {shown(b)} is the input folder; choose another folder")
    if inside(a, b):
        raise UnsafePath(
            f"the input folder {shown(a)} is inside the {what} {shown(b)}: outputs could overwrite inputs; "
            "choose a folder outside the input folder"
        )
    if inside(b, a):
        raise UnsafePath(
            f"the {what} {shown(b)} is inside the input folder {shown(a)}: outputs would be mixed with (and read "
            "back as) inputs; choose a folder outside the input folder"
        )


def relative_path(value: object, what: str) -> str:
    """``value`` if it is a safe relative POSIX path (see the module docstring), else ``ValueError`` naming ``what``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what}: expected a relative path, got {shown(repr(value))}")
    if "\0" in value:
        raise ValueError(f"{what}: a path with a NUL character: {shown(value)}")
    try:
        os.fsencode(value)
    except UnicodeError:
        raise ValueError(f"{what}: not a valid file name: {shown(value)}") from None
    if value.startswith("/") or (os.sep != "/" and (value.startswith(os.sep) or os.path.isabs(value))):
        raise ValueError(f"{what}: an absolute path is not allowed: {shown(value)}")
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts) or (os.sep != "/" and any(os.sep in p for p in parts)):
        raise ValueError(f"{what}: the path must stay inside its folder (no '..', '.' or empty parts): {shown(value)}")
    return value
