"""Progress output for every long command, through one library (tqdm).

On a terminal: a tqdm bar that redraws in place. Anywhere else (a log file, CI, a pipe): plain lines,
one each time another tenth of the work is done, so logs stay readable. Library code receives the
stream from the command line (``None``: silent) and never prints on its own.
"""

from __future__ import annotations

from typing import Any, TextIO

from tqdm import tqdm


NO_ETA = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"  # the caller's estimate


class Progress:
    """``update(n, **figures)``, ``write(line)`` (a line above the bar), ``close()``; also a context manager.
    ``eta=False``: no time left from the bar's own rate (the caller knows better and says it in a figure)."""

    def __init__(self, stream: TextIO | None, *, total: int, desc: str, unit: str = "it", initial: int = 0,
                 eta: bool = True) -> None:
        self.stream, self.total, self.desc, self.unit = stream, total, desc, unit
        self.done = initial
        self.tty = stream is not None and hasattr(stream, "isatty") and stream.isatty()
        self._bar = (tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, dynamic_ncols=True,
                          leave=False, smoothing=0.05, bar_format=None if eta else NO_ETA) if self.tty else None)
        self._next_tenth = (10 * initial // max(total, 1) + 1) if total else 11

    def update(self, n: int = 1, **figures: Any) -> None:
        self.done += n
        if self._bar is not None:
            if figures:
                self._bar.set_postfix(figures, refresh=False)
            self._bar.update(n)
        elif self.stream is not None and self.total and 10 * self.done >= self._next_tenth * self.total:
            self._next_tenth = 10 * self.done // self.total + 1
            extra = "".join(f" {k} {v}" for k, v in figures.items())
            self.write(f"{self.desc}: {self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%){extra}")

    def set_total(self, total: int) -> None:
        """A new goal, for work whose size becomes known as it goes."""
        self.total = total
        if self._bar is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()

    def write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        elif self.stream is not None:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(stream: TextIO | None, *, total: int, desc: str, unit: str = "it", initial: int = 0,
             eta: bool = True) -> Progress:
    return Progress(stream, total=total, desc=desc, unit=unit, initial=initial, eta=eta)


def duration(seconds: float) -> str:
    """A span of time as people say it: ``45 s``, ``12 min``, ``15 h 40 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
