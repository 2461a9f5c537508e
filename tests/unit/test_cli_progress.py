"""CLI progress: one line per tenth when not on a terminal, a bar when on one."""

from __future__ import annotations

import io

from distributor.cli.progress import Progress, polled


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_terminal_one_line_per_tenth():
    out = io.StringIO()
    progress = Progress("import list.csv", stream=out)
    for done in range(0, 1001):
        progress.update(done, 1000)
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "import list.csv: 0 % (0 of 1,000)"
    assert lines[-1] == "import list.csv: 100 % (1,000 of 1,000)"
    assert len(lines) == 11


def test_on_a_terminal_a_bar_is_drawn():
    out = Tty()
    progress = Progress("send", stream=out)
    progress.update(5, 10)
    progress.update(10, 10)
    progress.finish()
    assert "10/10" in out.getvalue()


def test_polled_reads_until_the_work_ends():
    out = io.StringIO()
    state = {"done": 0}
    with polled("run #1", lambda: (state["done"], 4), every=0.01, stream=out):
        for n in range(1, 5):
            state["done"] = n
    assert out.getvalue().splitlines()[-1] == "run #1: 100 % (4 of 4)"
