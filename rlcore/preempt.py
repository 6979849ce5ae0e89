"""Preemption: SIGTERM or SIGINT (what Slurm, Kubernetes, `ray job stop` and Ctrl-C send) stops the
run at the next safe point with a checkpoint, instead of killing it mid-write.

    stop = StopRequests(grace_s=60.0, on_expire=hard_stop)
    cluster.on_wait = stop.check      # called every ~0.5 s while waiting on rollouts / verifiers
    with stop.installed():
        with stop.interruptible():    # rollouts, verification, evaluation: nothing to lose
            data = collect()
        update(data)                  # the learner's state changes here: finish it first
        if stop.signal: ...           # checkpoint, stop the actors, raise Preempted

The handler only notes the signal (an exception raised inside a signal handler while Ray waits
in `ray.get` comes out as a SystemError, not as itself). Inside `interruptible()`, `check()` (the
cluster's wait loops call it) raises Preempted within half a second: the learner still holds the
last step's weights, which is what the checkpoint saves; elsewhere the loop stops at the end of
the step. If the run is still busy `grace_s` after the signal, `on_expire` runs (stop every
actor, exit without a new checkpoint: the previous one stands). A second signal does the same at
once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """The run stopped on a signal; `checkpoint` is where it can resume from (None: none yet)."""

    def __init__(
        self, signame: str, step: int = 0, checkpoint: str | None = None, run_dir: str = ""
    ) -> None:
        super().__init__(signame)
        self.signame, self.step, self.checkpoint, self.run_dir = signame, step, checkpoint, run_dir
        self.signum = int(getattr(signal, signame, signal.SIGTERM))


class StopRequests:
    def __init__(self, grace_s: float, on_expire: Callable[[str], None]) -> None:
        self.grace_s = grace_s
        self.on_expire = on_expire
        self.signal: str | None = None  # the first signal's name, once one arrived
        self.received_at = 0.0
        self._interruptible = False
        self._timer: threading.Timer | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequests]:
        """Handlers for SIGTERM and SIGINT while the block runs (main thread only: elsewhere,
        e.g. a test calling train() from a thread, signals are left alone); a grace timer still
        running when it ends is cancelled."""
        handlers = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, self._handle) for s in SIGNALS} if handlers else {}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if self._timer is not None:
                self._timer.cancel()

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A block a signal may abandon: `check()` raises Preempted inside it."""
        self.check(inside=True)
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False

    def check(self, inside: bool = False) -> None:
        """Raise Preempted if a signal came and the caller is in an interruptible block."""
        if self.signal is not None and (inside or self._interruptible):
            self._interruptible = False
            raise Preempted(self.signal)

    def request(self, name: str) -> None:
        """A stop asked for from inside the run (the hang watchdog, rlcore/hangs.py), taken as a
        signal named `name` is: at the next safe point, or after the grace period at once."""
        self._note(name)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._note(signal.Signals(signum).name)

    def _note(self, name: str) -> None:
        if self.signal is not None:
            log.error("%s again: stopping now, without a new checkpoint", name)
            self._expire(name)
            return
        self.signal, self.received_at = name, time.time()
        log.warning(
            "%s received: checkpointing and stopping at the next safe point (at most %.0f s; "
            "send it again to stop at once)",
            name,
            self.grace_s,
        )
        self._timer = threading.Timer(self.grace_s, self._expire, args=(name,))
        self._timer.daemon = True
        self._timer.start()

    def _expire(self, name: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.on_expire(name)


class StartupSignals:
    """While the actors start there is nothing to checkpoint: SIGTERM or SIGINT stops the start-up
    at once, as Preempted with no checkpoint, instead of Ray's native stack dump.

        with StartupSignals() as startup:
            init_ray(...)
            startup.install()         # ray.init sets a SIGTERM handler of its own
            cluster = Cluster.start(...)
            startup.check()           # a signal some library caught and dropped still stops it
        # on any exception: startup.signal names the signal if one caused it

    The handler raises Preempted; from inside a Ray wait it may surface as another exception, and
    code that catches every Exception (some of ray.init's) may drop it, which is why the signal's
    name is kept for the caller to check.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StartupSignals:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)  # type: ignore[arg-type]
        self._previous = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for s in SIGNALS:
            previous = signal.signal(s, self._handle)
            self._previous.setdefault(s, previous)

    def check(self) -> None:
        """Raise Preempted if a signal came, whether or not its exception reached the caller."""
        if self.signal is not None:
            raise Preempted(self.signal)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signal.Signals(signum).name
        log.warning("%s received while the actors start: stopping", self.signal)
        raise Preempted(self.signal)
