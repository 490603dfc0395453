"""Pair discovery: which image goes with which mask file(s) in an input folder.

Layouts (:func:`find_pairs`), file names ending in .png / .jpg / .jpeg / .tif / .tiff / .bmp:

* ``IN/images/<rel>.<ext>`` with ``IN/masks/<rel>.<ext>`` (or ``<rel>_mask.<ext>``): matching stems;
* anything else: ``<dir>/<name>.<ext>`` with ``<dir>/<name>_mask.<ext>`` beside it, in any
  subfolder (the breast-ultrasound BUSI layout); extra ``<name>_mask_<k>`` files (BUSI's second
  lesions) are merged into the first by a pixelwise maximum.

Names are matched as whole strings, whatever they contain (spaces, newlines, non-UTF-8 bytes,
leading dashes); hidden names (starting with ``.``) and symbolic links to folders are skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .paths import shown

__all__ = ["IMAGE_EXTENSIONS", "Pair", "find_pairs"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
# fullmatch + DOTALL: a name may hold a newline ('.' and '$' would stop at one).
_MASK_NAME = re.compile(r"(?P<stem>.+)_mask(?:_(?P<extra>[0-9]+))?", re.DOTALL)


@dataclass(frozen=True)
class Pair:
    """One image with its mask file(s), as POSIX paths relative to the input folder.

    ``stem`` (the relative image path without extension) names the outputs.
    """

    stem: str
    image: str
    masks: tuple[str, ...]


def _files(root: Path, exclude: Path | None, problems: list[str]) -> Iterator[Path]:
    """Image files under ``root``, skipping hidden names and the ``exclude`` folder; unlistable folders go to ``problems``."""

    def unlistable(exc: OSError) -> None:
        if exc.filename is not None and Path(exc.filename) != root:  # a missing root is just empty
            problems.append(f"{shown(exc.filename)}: cannot list the folder ({exc.strerror or exc})")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        )
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield here / name


def find_pairs(in_dir: str | os.PathLike, *, exclude: str | os.PathLike | None = None) -> tuple[list[Pair], list[str]]:
    """The image/mask pairs under ``in_dir`` sorted by relative image path, and the problems found.

    Problems (``"<path>: <reason>"``, names escaped by :func:`~sas_fast.folder.paths.shown`) are
    images without a mask, masks without an image and ambiguous names (``a.png`` and ``a.jpg`` both
    present); those files are left out.  Files under ``exclude`` are ignored.
    """
    root = Path(in_dir)
    skip = None if exclude is None else Path(exclude).resolve()
    images: dict[str, list[str]] = {}  # stem -> image files
    masks: dict[str, list[tuple[int, str]]] = {}  # stem -> (extra-mask number, file); -1 for the first mask
    problems: list[str] = []
    if (root / "images").is_dir() and (root / "masks").is_dir():
        for path in _files(root / "images", skip, problems):
            images.setdefault(_stem(path, root / "images"), []).append(_rel(path, root))
        for path in _files(root / "masks", skip, problems):
            stem = _stem(path, root / "masks")
            key, extra = (stem, -1) if stem in images else _mask_key(stem) or (stem, -1)
            masks.setdefault(key, []).append((extra, _rel(path, root)))
    else:
        for path in _files(root, skip, problems):
            stem = _stem(path, root)
            named = _mask_key(stem)
            if named is None:
                images.setdefault(stem, []).append(_rel(path, root))
            else:
                masks.setdefault(named[0], []).append((named[1], _rel(path, root)))

    pairs = []
    for stem, found in images.items():
        numbers = [extra for extra, _ in masks.get(stem, [])]
        if len(found) > 1:
            problems.append(
                f"{shown(found[0])}: ambiguous, several images named '{shown(stem)}': {', '.join(map(shown, found))}"
            )
        elif not numbers:
            problems.append(f"{shown(found[0])}: missing mask (expected e.g. {shown(stem)}_mask.png)")
        elif len(set(numbers)) < len(numbers):
            listed = ", ".join(shown(m) for _, m in sorted(masks[stem]))
            problems.append(f"{shown(found[0])}: ambiguous, several masks: {listed}")
        else:
            pairs.append(Pair(stem=stem, image=found[0], masks=tuple(m for _, m in sorted(masks[stem]))))
    for stem, found in masks.items():
        if stem not in images:
            problems.extend(f"{shown(m)}: mask without an image" for _, m in found)
    pairs.sort(key=lambda p: p.image)
    return pairs, sorted(problems)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _stem(path: Path, root: Path) -> str:
    """The path relative to ``root`` without its extension, POSIX style."""
    return path.relative_to(root).with_suffix("").as_posix()


def _mask_key(stem: str) -> tuple[str, int] | None:
    """``(image stem, extra-mask number or -1)`` for a mask name ``<stem>_mask[_<k>]``, else None."""
    head, _, name = stem.rpartition("/")
    match = _MASK_NAME.fullmatch(name)
    if match is None:
        return None
    image = f"{head}/{match['stem']}" if head else match["stem"]
    return image, -1 if match["extra"] is None else int(match["extra"])
