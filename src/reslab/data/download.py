"""Download a file with a checksum: stream to a temporary file, verify, rename into place.

A failed or mismatched download leaves nothing behind; only a verified file ever carries the
final name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from reslab.errors import DataError

BLOCK = 1 << 20


def md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as f:
            while block := f.read(BLOCK):
                digest.update(block)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    return digest.hexdigest()


def fetch(url: str, dest: Path, *, md5: str | None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (atomically), checking its MD5 when ``md5`` is given."""
    digest = hashlib.md5(usedforsecurity=False)
    tmp = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part",
                                         delete=False) as out:
            tmp = Path(out.name)
            with urllib.request.urlopen(url, timeout=timeout) as response:
                while block := response.read(BLOCK):
                    digest.update(block)
                    out.write(block)
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise DataError(f"download of {url} is corrupt: MD5 {digest.hexdigest()}, expected {md5}")
        os.chmod(tmp, 0o644)  # temporary files are private; the dataset need not be
        os.replace(tmp, dest)
        tmp = None
        return dest
    except urllib.error.HTTPError as e:
        raise DataError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DataError(f"cannot download {url}: {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:  # timeouts, cut connections, a full or read-only disk
        raise DataError(f"download of {url} to {dest} failed: {e!r}") from None
    except ValueError as e:  # a malformed URL
        raise DataError(f"cannot download {url}: {e}") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
