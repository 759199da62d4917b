"""Input tables read with a precise error, and output files that are either whole or not there
(written beside, then renamed over).

A command stopped while it writes (Ctrl-C, a full disk, a kill) must not leave a truncated
file where a whole one is expected: a CSV cut short reads back as fewer transactions without
an error, and a feature cache cut short would be taken for a finished one next time. Every
file the commands produce is written to a temporary name in the same directory and renamed
over its target only once complete (``os.replace`` is atomic within a file system); on an
error the temporary file is removed and the previous file, if any, is left as it was.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from schemas.common import ID_MAX_LENGTH

__all__ = [
    "DATA_DIR",
    "EXTENSIONS",
    "check_writable",
    "id_text",
    "read_table",
    "replacing",
    "write_text",
]

#: where commands keep the datasets they generate, unless told otherwise (not tracked: the
#: repository's top level holds the project, not its outputs)
DATA_DIR = Path("models/data")

#: the tables the commands read and write, told apart by their name's extension
EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_table(path: Path, kind: str, **csv_options: object) -> pd.DataFrame:
    """The table at ``path`` (``kind`` "csv" or "parquet"), or a ValueError that names the file
    and says what is wrong (pandas' and pyarrow's messages name neither).

    A CSV row with more fields than the header is refused: pandas would otherwise take the
    extra field of the first data row for an index and shift every column by one, and the
    error would then be about a value in the wrong column.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            if kind == "csv":
                return pd.read_csv(path, index_col=False, **csv_options)
            return pd.read_parquet(path, engine="pyarrow")
    except pd.errors.ParserWarning:
        raise ValueError(f"{path}: a row has more fields than the header") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty (not even a header)") from None
    except (OSError, ValueError) as exc:  # parse errors (pyarrow's too) are ValueErrors
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: cannot read as {kind}: {reason}") from None


def id_text(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """An id column as text, and which rows break the contract's rule for ids (1 to
    :data:`~schemas.common.ID_MAX_LENGTH` characters; a missing one is empty): a file the
    commands read holds its ids to what the topics would take."""
    text = values.astype("string")
    length = text.str.len().fillna(0)
    return text, ((length < 1) | (length > ID_MAX_LENGTH)).astype(bool)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


#: the process's umask, read once (reading it sets it, which threads must not see mid-way)
_UMASK = _umask()


@contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; it becomes ``path`` when the block
    ends without an error. The directory is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file its owner's only (0600); written in place it would have had
        # the umask's mode, which another user (a worker's container) may need to read it
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(path: Path | str) -> None:
    """Raise the OSError that writing ``path`` would meet (its directory cannot be made, or
    nothing can be written there), before a command spends minutes or hours on what it would
    write there. Tried as :func:`replacing` writes: a file beside it, removed at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".check")
    except OSError as exc:  # named for the file asked for, not the probe beside it
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.close(fd)
    os.unlink(name)


def write_text(path: Path | str, text: str) -> None:
    """``path.write_text(text)`` (UTF-8), whole or not at all."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
