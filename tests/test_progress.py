"""porting.progress.Progress: a tqdm bar on a terminal, one summary line elsewhere, silence
when disabled."""

from __future__ import annotations

import io
import re

import pytest

import porting.progress as progress_mod
from porting.progress import Progress


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class FakeClock:
    """A settable stand-in for ``time.monotonic``."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(progress_mod, "_now", fake)
    return fake


def test_non_terminal_writes_exactly_one_summary_line(clock: FakeClock) -> None:
    out = io.StringIO()
    bar = Progress(10, "query", stream=out)
    for _ in range(5):
        bar.update(2)
    assert out.getvalue() == ""  # nothing while running: no redraws in logs
    clock.t += 4.0
    bar.close()
    assert out.getvalue() == "query: 10/10 img in 4.0s (2.5 img/s)\n"
    assert "\r" not in out.getvalue()
    bar.close()  # idempotent: no second line
    assert out.getvalue().count("\n") == 1


def test_terminal_shows_a_tqdm_bar_with_rate(clock: FakeClock) -> None:
    out = FakeTerminal()
    with Progress(8, "gallery", stream=out, unit="img") as bar:
        assert bar.terminal
        bar.update(3)
        bar.update(5)
    text = out.getvalue()
    assert "\r" in text  # redrawn in place
    assert "gallery" in text and "8/8" in text and "img/s" in text
    assert "100%" in text
    # The summary line is not written on top of the bar on a terminal.
    assert bar.summary() not in text


@pytest.mark.parametrize("stream_type", [io.StringIO, FakeTerminal])
def test_disabled_is_silent_but_still_counts(stream_type: type[io.StringIO],
                                             clock: FakeClock) -> None:
    out = stream_type()
    with Progress(6, "train", enabled=False, stream=out, unit="pair") as bar:
        bar.update(4)
        bar.set_postfix({"objective": 0.5})
        clock.t += 2.0
    assert out.getvalue() == ""
    assert bar.done == 4
    assert bar.summary() == "train: 4/6 pair in 2.0s (2.0 pair/s) objective: 0.5"


def test_empty_total_is_silent() -> None:
    out = FakeTerminal()
    with Progress(0, "nothing", stream=out) as bar:
        assert not bar.enabled
    assert out.getvalue() == ""


def test_summary_content_and_frozen_clock(clock: FakeClock) -> None:
    bar = Progress(1000, "features", stream=io.StringIO(), unit="img")
    assert bar.summary() == "features: 0/1000 img in 0.0s (? img/s)"
    bar.update(250)
    bar.update(250)
    clock.t += 10.0
    assert bar.summary() == "features: 500/1000 img in 10.0s (50.0 img/s)"
    bar.close()
    clock.t += 50.0  # after close the elapsed time no longer grows
    assert bar.elapsed() == 10.0
    assert re.fullmatch(r"features: 500/1000 img in 10\.0s \(50\.0 img/s\)", bar.summary())


def test_context_manager_closes_on_error(clock: FakeClock) -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError), Progress(4, "query", stream=out) as bar:
        bar.update(1)
        clock.t += 1.0
        raise RuntimeError("boom")
    assert out.getvalue() == "query: 1/4 img in 1.0s (1.0 img/s)\n"


def test_postfix_reaches_the_summary_line(clock: FakeClock) -> None:
    out = io.StringIO()
    with Progress(2, "epoch 01", stream=out, unit="batch") as bar:
        bar.update(2)
        bar.set_postfix({"objective": 0.123456, "top1err": "0.25"})
        clock.t += 0.5
    assert out.getvalue() == (
        "epoch 01: 2/2 batch in 0.5s (4.0 batch/s) objective: 0.1235 top1err: 0.25\n")


def test_extract_keeps_the_name() -> None:
    from porting.validation import extract

    assert extract.Progress is Progress
    assert "Progress" in extract.__all__


def test_stream_without_isatty_is_not_a_terminal(clock: FakeClock) -> None:
    class Sink:
        def __init__(self) -> None:
            self.parts: list[str] = []

        def write(self, s: str) -> int:
            self.parts.append(s)
            return len(s)

        def flush(self) -> None:
            pass

    sink = Sink()
    with Progress(3, "x", stream=sink) as bar:  # type: ignore[arg-type]
        bar.update(3)
    assert "".join(sink.parts) == "x: 3/3 img in 0.0s (? img/s)\n"
