"""The small file formats of run folders: JSON and JSON-lines records, TOML configs, atomic text writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from reslab.config import RunConfig, as_dict
from reslab.rundir.lock import RunFolderError


def default_mode(directory: bool = False) -> int:
    """The permissions a plain ``open`` or ``mkdir`` would give under the process's umask
    (``mkstemp``/``mkdtemp`` use 0600/0700, which would hide a run from the user's group)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def write_json(path: Path, data: Any) -> Path:
    atomic_write_text(path, json.dumps(data, indent=2, default=str))
    return path


def read_json(path: Path) -> Any:
    """The file's JSON, None where there is no file; a file that is not JSON is refused, naming it."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        reason = f"{e.msg} at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else "not UTF-8 text"
        raise RunFolderError(f"{path} is not valid JSON ({reason}); restore or remove it") from None


def read_jsonl(path: Path) -> list[dict]:
    """Every complete row; a last line cut off by a crash is left out."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def truncate_jsonl(path: Path, step: int) -> None:
    """On resume, keep the rows up to ``step`` (the checkpoint the run restarts from), atomically."""
    if path.exists():
        keep = [row for row in read_jsonl(path) if row.get("step", 0) <= step]
        atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in keep))


def dump_toml(cfg: RunConfig) -> str:
    """Serialise a config as TOML (scalars first, then one table per section)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    d = as_dict(cfg)
    lines = [f"{k} = {value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            lines += [f"{kk} = {value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"
