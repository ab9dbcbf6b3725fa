"""One live progress view for a grid run (instead of Ray's wall of logs)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.table import Table


@dataclass
class GridProgress:
    total: int
    skipped: int = 0
    concurrency: int = 1
    done: int = 0
    failed: int = 0
    running: dict[str, str] = field(default_factory=dict)  # trial label -> "epoch e/E"
    durations: list[float] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)
    t0: float = field(default_factory=time.time)

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed - len(self.running)

    def eta_seconds(self) -> float | None:
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        outstanding = self.remaining + len(self.running) * 0.5
        return mean * outstanding / max(1, self.concurrency)

    def render(self) -> Table:
        table = Table(title="DebiasBench grid", expand=False)
        for column in ("done", "running", "failed", "remaining", "skipped (complete)", "elapsed", "ETA"):
            table.add_column(column, justify="right")
        eta = self.eta_seconds()
        table.add_row(
            str(self.done),
            str(len(self.running)),
            str(self.failed),
            str(self.remaining),
            str(self.skipped),
            _fmt(time.time() - self.t0),
            _fmt(eta) if eta is not None else "?",
        )
        for label, state in list(self.running.items())[:8]:
            table.add_row("", "", "", "", "", label, state)
        return table


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class LiveView:
    """mode "auto": a rich Live display on a terminal, else periodic plain lines; "lines": plain
    lines only (for logs); "off": nothing."""

    def __init__(self, progress: GridProgress, mode: str = "auto") -> None:
        if mode not in ("auto", "lines", "off"):
            raise ValueError(f"progress mode must be auto, lines or off, got {mode!r}")
        self.progress = progress
        self.console = Console(stderr=True)
        self.enabled = mode != "off"
        use_live = mode == "auto" and self.console.is_terminal
        self.live = (
            Live(progress.render(), console=self.console, refresh_per_second=2, transient=False) if use_live else None
        )
        self._last_line = 0.0

    def __enter__(self) -> LiveView:
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.live.update(self.progress.render())
            self.live.__exit__(*exc)
        elif self.enabled:
            self.line(force=True)

    def refresh(self) -> None:
        if self.live:
            self.live.update(self.progress.render())
        elif self.enabled:
            self.line()

    def line(self, force: bool = False) -> None:
        if not force and time.time() - self._last_line < 15:
            return
        self._last_line = time.time()
        p = self.progress
        eta = p.eta_seconds()
        self.console.print(
            f"[grid] done {p.done}  running {len(p.running)}  failed {p.failed}  remaining {p.remaining}  "
            f"skipped {p.skipped}  elapsed {_fmt(time.time() - p.t0)}  ETA {_fmt(eta) if eta is not None else '?'}",
            highlight=False,
        )
