"""Atomic file writes: a reader (or a run that was killed mid-write) sees the old file or the new
one, never half of one.

Every writer goes to a temporary file beside the target (same directory, so the same file system),
which is flushed to disk and then renamed over the target with :func:`os.replace` (atomic on POSIX
and Windows). :func:`atomic_path` serves writers that take a path (``torch.save``, matplotlib's
``savefig``, ``imageio``, ``np.savez``): the temporary name keeps the target's suffix, so writers
that pick the format from it still do.

    with atomic_path(run / "checkpoint.pt") as tmp:
        torch.save(payload, tmp)
    atomic_write_text(run / "summary.json", json.dumps(summary))
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) to write to; on a clean exit it replaces
    ``path``, on an exception (``KeyboardInterrupt`` included) it is removed and ``path`` is left
    as it was. The caller's writer must create the file at the yielded path."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as f:  # the data on disk before the name points at it
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (permissions as a plain ``open`` would give)."""
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (``encoding``, newlines as written)."""
    atomic_write_bytes(path, text.encode(encoding))


__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]
