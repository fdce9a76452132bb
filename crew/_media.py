"""Media files a task's rows point to (images, sound): where they may lie, and whether each one decodes.

A task's media column holds paths relative to the task folder, inside a
folder of it (`images/cat1.png`): the sandbox then exposes those folders to
an experiment whole, never the task folder's other files (its `grading/`
least of all). A file is checked by decoding it, not by its name: a
truncated JPEG or a header-only WAV fails here, at `crew validate`, instead
of in the middle of an experiment's training loop. Results are kept per
(path, size, mtime), so a task loaded again re-reads only what changed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Literal

__all__ = ["MEDIA_KINDS", "MediaKind", "decode_problem", "media_folder", "path_problem", "problems"]

MediaKind = Literal["image", "audio"]
MEDIA_KINDS: tuple[str, ...] = ("image", "audio")

_checked: dict[tuple[str, int, int], str | None] = {}
"""(absolute path, size, mtime_ns) -> why it does not decode, or None: files already decoded in this process."""


def path_problem(value: object) -> str | None:
    """Why a media column's cell cannot be a media path, or None: it must be a relative path inside a folder of the
    task folder, never outside it nor in `grading/`."""
    if not isinstance(value, str) or not value.strip():
        return "is empty"
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return "points outside the task folder"
    if len(path.parts) < 2:
        return "is not inside a folder of the task folder (write e.g. images/<file>)"
    if path.parts[0] == "grading":
        return "is inside grading/, which no experiment may read"
    return None


def media_folder(value: str) -> str:
    """The task folder's top-level folder a valid media path lies in (what the sandbox exposes)."""
    return PurePosixPath(value.replace("\\", "/")).parts[0]


def _decode_image(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (64, 64))  # JPEG decodes at a reduced scale: every byte is still read, so truncation shows
        image.load()


def _decode_audio(path: Path) -> None:
    import soundfile

    data, _rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if data.shape[0] == 0:
        raise ValueError("holds no samples")


def decode_problem(path: Path, kind: MediaKind) -> str | None:
    """Why the file at `path` is not a readable `kind`, or None. Decoded once per file version and process."""
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _checked:
        return _checked[key]
    why: str | None = None
    try:
        (_decode_image if kind == "image" else _decode_audio)(path)
    except Exception as exc:  # PIL and libsndfile raise many types for a bad file; each means "does not decode"
        why = f"does not decode as {kind}: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}"
    _checked[key] = why
    return why


def problems(root: Path, values: Iterable[object], kind: MediaKind) -> tuple[int, list[str]]:
    """(how many cells fail, the first few as `value (why)`) for one media column's cells under task folder `root`."""
    failed, shown = 0, list[str]()
    for value in values:
        why = path_problem(value)
        if why is None:
            why = decode_problem(root / str(value), kind)
        if why is not None:
            failed += 1
            if len(shown) < 3:
                shown.append(f"{value!r} ({why})")
    return failed, shown
