"""Per-trial claims on a result store, so two drivers on the same results directory never train
the same trial: the second skips what the first is running, and says so.

Layout under a local (or network-mounted) store:

    claims/drivers/<run>.json   one file per running driver: host, pid, start time, command;
                                its modification time is a heartbeat, refreshed every 30 s
    claims/trials/<key>.claim   the run that claimed the trial, created with O_CREAT | O_EXCL
                                (atomic on local file systems and on NFS v3 and later)

A claim is live while its driver's heartbeat is younger than STALE_AFTER_S, measured against a
file this driver just touched on the same file system (so clock skew between NFS clients does
not matter), and, when the driver ran on this host, while its process exists. A driver killed
with -9 leaves its claims behind; the next driver breaks them at once on the same host, or after
STALE_AFTER_S from another host. Stores given as URIs (s3://, gs://) have no exclusive create, so
they are not claimed: run one driver per URI store.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from debiasbench.benchmark.store import ResultStore

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
STALE_AFTER_S = 180.0
# A claim file is created empty and filled at once by the same process; an empty one older than this
# was never filled (its driver died in between), and one that is not valid JSON never will be.
BEING_WRITTEN_S = 5.0


@dataclass(frozen=True)
class Holder:
    """Who holds a claim: enough to tell the user where the trial is running."""

    run: str
    host: str
    pid: int
    since: str

    def describe(self) -> str:
        if self.pid == 0:  # a claim file being written this moment (store_lock.BEING_WRITTEN_S)
            return "a driver writing its claims this moment"
        return f"pid {self.pid} on {self.host} since {self.since}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


class TrialClaims:
    """This driver's claims on one store. Use as a context manager: the heartbeat runs inside it
    and every claim is released on the way out (also on Ctrl-C and errors)."""

    def __init__(
        self, store_root: str | os.PathLike, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S
    ) -> None:
        self.root = Path(store_root) / "claims"
        self.trials_dir = self.root / "trials"
        self.drivers_dir = self.root / "drivers"
        self.run = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.held: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._me = Holder(
            self.run, socket.gethostname(), os.getpid(), datetime.now(timezone.utc).isoformat(timespec="seconds")
        )

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def driver_file(self) -> Path:
        return self.drivers_dir / f"{self.run}.json"

    def __enter__(self) -> TrialClaims:
        return self  # nothing is written until the first claim

    def _start(self) -> None:
        if self._thread is not None:
            return
        self.drivers_dir.mkdir(parents=True, exist_ok=True)
        self.trials_dir.mkdir(parents=True, exist_ok=True)
        self.driver_file.write_text(json.dumps({**self._me.__dict__, "command": " ".join(sys.argv)[:500]}))
        self._thread = threading.Thread(target=self._beat, name="debiasbench-claims", daemon=True)
        self._thread.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every claim and stop the heartbeat (idempotent)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.release(list(self.held))
            self.driver_file.unlink(missing_ok=True)
        except OSError as error:
            log.warning(
                "could not release the claims of this driver under %s (%s); they go stale when it exits",
                self.root,
                error,
            )

    def _forget_dead_drivers(self, now: float) -> None:
        """Remove the heartbeat files of drivers that are gone (killed without cleaning up)."""
        for path in self.drivers_dir.glob("*.json"):
            if path == self.driver_file:
                continue
            try:
                data = json.loads(path.read_text())
                dead = data.get("host") == socket.gethostname() and not _pid_alive(int(data.get("pid", 0)))
                if dead or now - path.stat().st_mtime > self.stale_after_s:
                    path.unlink(missing_ok=True)
            except (OSError, ValueError, TypeError, AttributeError):
                continue

    def other_drivers_seen(self) -> bool:
        """Whether another driver's heartbeat file exists (live or left by a killed driver)."""
        try:
            return any(path.name != self.driver_file.name for path in self.drivers_dir.iterdir())
        except OSError:
            return False

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.driver_file)
            except OSError as error:  # a full or vanished disk: the trials will say so
                log.warning("cannot refresh the claim heartbeat %s (%s)", self.driver_file, error)

    # -- claims ----------------------------------------------------------------------------
    def _claim_file(self, key: str) -> Path:
        return self.trials_dir / f"{key}.claim"

    def _now_on_fs(self) -> float:
        """The store's file-system clock: the mtime of a file touched just now."""
        try:
            os.utime(self.driver_file)
            return self.driver_file.stat().st_mtime
        except OSError:
            return time.time()

    def _read(self, path: Path) -> Holder | None:
        try:
            data = json.loads(path.read_text())
            return Holder(str(data["run"]), str(data["host"]), int(data["pid"]), str(data["since"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def holder_if_live(self, path: Path, now: float) -> Holder | None:
        """The live holder of a claim file, or None when it is stale (or gone)."""
        holder = self._read(path)
        if holder is None:
            # Being written right now (created, not yet filled): live for a moment. Garbled (not valid
            # JSON): stale at once, so a damaged claim never blocks its trial (it is broken, and named).
            try:
                stat = path.stat()
            except OSError:
                return None
            being_written = stat.st_size == 0 and now - stat.st_mtime < BEING_WRITTEN_S
            return Holder("?", "?", 0, "?") if being_written else None
        if holder.run == self.run:
            return holder
        try:
            beat = (self.drivers_dir / f"{holder.run}.json").stat().st_mtime
        except OSError:
            return None  # its driver ended without releasing it (or was killed and cleaned up)
        if now - beat > self.stale_after_s:
            return None
        if holder.host == socket.gethostname() and not _pid_alive(holder.pid):
            return None
        return holder

    def _create(self, path: Path) -> bool:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(self._me.__dict__))
        return True

    def _break(self, path: Path, stale: Holder | None) -> None:
        """Remove a stale claim without ever removing a fresh one another driver just made."""
        aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except OSError:
            return  # someone else moved it first
        moved = self._read(aside)
        if stale is not None and moved is not None and moved.run != stale.run:
            try:
                os.link(aside, path)  # it was a fresh claim: put it back
            except OSError:
                pass
        aside.unlink(missing_ok=True)
        log.warning(
            "broke the stale claim on %s (%s)",
            path.stem,
            stale.describe() if stale else f"its claim file {path} was not valid JSON; the trial runs here",
        )

    def claim(self, keys: Iterable[str]) -> tuple[list[str], dict[str, Holder]]:
        """Claim every key not held by another live driver: (claimed keys, key -> holder of
        the others)."""
        keys = list(keys)
        mine: list[str] = []
        others: dict[str, Holder] = {}
        if not keys:
            return mine, others
        self._start()
        now = self._now_on_fs()
        self._forget_dead_drivers(now)
        for key in keys:
            path = self._claim_file(key)
            for _ in range(2):
                if self._create(path):
                    self.held.add(key)
                    mine.append(key)
                    break
                holder = self.holder_if_live(path, now)
                if holder is not None and holder.run == self.run:
                    mine.append(key)
                    break
                if holder is not None:
                    others[key] = holder
                    break
                self._break(path, self._read(path))
            else:
                holder = self._read(path)
                others[key] = holder or Holder("?", "?", 0, "?")
        return mine, others

    def release(self, keys: Iterable[str]) -> None:
        """Give up claims (only files that still name this run are removed)."""
        for key in list(keys):
            path = self._claim_file(key)
            holder = self._read(path)
            if holder is not None and holder.run == self.run:
                path.unlink(missing_ok=True)
            self.held.discard(key)


def describe_skipped(others: dict[str, Holder]) -> str:
    """One line for the console: how many trials another driver runs, and which drivers."""
    drivers = sorted({holder.describe() for holder in others.values()})
    shown = ", ".join(drivers[:3]) + (f" and {len(drivers) - 3} more" if len(drivers) > 3 else "")
    return (
        f"skipping {len(others)} trial(s) another driver is running on this results directory ({shown}); "
        "they are recorded there when it finishes"
    )


class _NoClaims:
    """Stores given as URIs have no exclusive create: nothing is claimed (one driver per store)."""

    def __enter__(self) -> _NoClaims:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def claim(self, keys: Iterable[str]) -> tuple[list[str], dict[str, Holder]]:
        return list(keys), {}


def trial_claims(store: ResultStore) -> TrialClaims | _NoClaims:
    return TrialClaims(store.root) if store.is_local else _NoClaims()


def claim_trials(claims: TrialClaims | _NoClaims, todo: list, store: ResultStore) -> tuple[list, dict[str, str]]:
    """The trials of `todo` this driver runs: those no other live driver holds and that did not
    finish while we looked. Says on the console which trials are skipped and who runs them."""
    mine, others = claims.claim([t.key for t in todo])
    if others:
        log.warning(describe_skipped(others))
    finished: set[str] = set()
    if isinstance(claims, TrialClaims) and claims.other_drivers_seen():
        # Another driver is (or was) at work here: it may have finished some of these between our
        # plan and our claims, so look again before training anything twice.
        finished = store.finished_keys() & set(mine)
        claims.release(finished)
    keep = set(mine) - finished
    return [t for t in todo if t.key in keep], {key: holder.describe() for key, holder in others.items()}
