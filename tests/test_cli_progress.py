"""The command line's progress: a live line on a terminal, plain lines in a log."""

from __future__ import annotations

import io

from aioforest import FitProgress
from aioforest.master import ProgressLine


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(line: ProgressLine, clock: FakeClock, total: int, step: float) -> None:
    for done in range(1, total + 1):
        clock.now = done * step
        line(FitProgress(done - 1, done, total, clock.now))
    line.end()


def test_a_log_gets_plain_lines_at_most_every_few_seconds_and_the_last() -> None:
    log, clock = io.StringIO(), FakeClock()
    _feed(ProgressLine(log, True, log_interval=5.0, clock=clock), clock, total=20, step=1.0)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [ln.split()[1] for ln in lines] == ["1/20", "6/20", "11/20", "16/20", "20/20"]
    assert text.endswith("\n")


def test_a_terminal_gets_one_live_line() -> None:
    tty, clock = Terminal(), FakeClock()
    _feed(ProgressLine(tty, True, clock=clock), clock, total=5, step=1.0)
    text = tty.getvalue()
    assert text.count("\r") == 5 and text.count("\n") == 1 and text.endswith("trees/s  ETA "
                                                                              "   0.0s\n")


def test_quiet_writes_nothing() -> None:
    out, clock = io.StringIO(), FakeClock()
    _feed(ProgressLine(out, False, clock=clock), clock, total=3, step=10.0)
    assert out.getvalue() == ""
