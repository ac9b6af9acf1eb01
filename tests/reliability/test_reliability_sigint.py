"""Fault injection (issue 11): SIGINT a CLI run in a subprocess mid-run; the finished rounds
are on disk, and ``--resume-from`` completes it bit-identically to an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_helpers import TINY_ARGS, one_error_line, records

from fl_sim.cli import main
from fl_sim.history import JOURNAL_NAME, History

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 20


def _journal_rounds(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except OSError:
        return 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("algorithm", ["feddlr", "topk_ef"])
def test_sigint_mid_run_then_resume_is_bit_identical(tmp_path, algorithm, capsys):
    args = ["run", *TINY_ARGS, "--algorithm", algorithm, "--rounds", str(ROUNDS)]
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "fl_sim", *args, "--output-dir", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while _journal_rounds(out / JOURNAL_NAME) < 3 and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never wrote 3 rounds"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = one_error_line(err, "interrupted:", f"--resume-from {out}")
    saved = History.load_json(out / f"{algorithm}.history.json")  # the usual outputs
    done = len(saved.records)
    assert 3 <= done < ROUNDS, "the interrupt came too late to test a resume"
    assert f"after round {done} of {ROUNDS}" in line
    assert records(History.load_jsonl(out / JOURNAL_NAME)) == records(saved)

    # the printed command, run here, completes the run
    command = line.split("resume with: python -m fl_sim ", 1)[1].split()
    assert command[-2:] == ["--resume-from", str(out)]
    assert main([*args, "--output-dir", str(out), "--resume-from", str(out)]) == 0
    resumed = History.load_json(out / f"{algorithm}.history.json")
    assert main([*args, "--output-dir", str(tmp_path / "straight")]) == 0
    straight = History.load_json(tmp_path / "straight" / f"{algorithm}.history.json")
    assert len(resumed.records) == ROUNDS and resumed.config["rounds"] == ROUNDS
    assert records(resumed) == records(straight)  # bit-identical, round by round
    assert records(resumed)[:done] == records(saved)
    capsys.readouterr()
