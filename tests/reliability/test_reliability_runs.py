"""Nothing lost (issue 11, items 1-5) and one-line CLI errors (item 18)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import TINY_ARGS, one_error_line, records, tiny

import fl_sim.simulator
from fl_sim import run
from fl_sim.cli import main
from fl_sim.history import JOURNAL_NAME, History
from fl_sim.simulator import DivergenceError, Observer

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------- 1. output paths first


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_1_bad_output_dir_is_refused_before_any_round(tmp_path, capsys, monkeypatch, where):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    target = blocker if where == "file" else blocker / "sub"

    def never(*args, **kwargs):
        raise AssertionError("a run started although the output folder is bad")

    monkeypatch.setattr(fl_sim.simulator, "run", never)
    assert main(["run", *TINY_ARGS, "--output-dir", str(target)]) == 2
    one_error_line(capsys.readouterr().err, "--output-dir", str(target))
    with pytest.raises(ValueError, match="output_dir"):  # the API checks it in setup
        fl_sim.simulator.setup(tiny(output_dir=str(target)))


def test_1_boundcheck_and_experiments_check_their_out_first(tmp_path, capsys, monkeypatch):
    import boundcheck.cli
    import experiments.__main__ as exp

    bad = tmp_path / "afile"
    bad.write_text("x")
    monkeypatch.setattr(boundcheck.cli, "_cmd_check", lambda a: pytest.fail("ran"))
    with pytest.raises(ValueError, match="--out"):
        boundcheck.cli.main(["check", "--seeds", "2", "--out", str(bad / "sub")])
    monkeypatch.setattr(exp, "untimed", lambda *a, **k: pytest.fail("ran"))
    assert exp.main(["--quick", "--out", str(bad / "sub")]) == 2
    one_error_line(capsys.readouterr().err, "--out")


# ----------------------------------------------------- 2. finished rounds always survive


def test_2_each_round_is_on_disk_and_a_failure_keeps_them(tmp_path):
    cfg = tiny(rounds=5, output_dir=str(tmp_path))

    def fail_in_round_4(r, params):
        if r == 4:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run(cfg, observer=Observer(on_global=fail_in_round_4))
    journal = History.load_jsonl(tmp_path / JOURNAL_NAME)
    assert [r.round for r in journal.records] == [1, 2, 3]
    reference = run(cfg.replace(output_dir=None)).history
    assert records(journal) == records(reference)[:3]
    # the recovery checkpoint resumes the run bit-identically
    resumed = run(cfg, resume_from=tmp_path)
    assert records(resumed.history) == records(reference)


def test_2_journal_survives_a_torn_last_line(tmp_path):
    run(tiny(rounds=3, output_dir=str(tmp_path)))
    path = tmp_path / JOURNAL_NAME
    text = path.read_text()
    path.write_text(text + text.splitlines()[-1][:25])  # a write cut short by a crash
    assert len(History.load_jsonl(path).records) == 3
    path.write_text(text.replace("\n", "\n{oops\n", 1))
    with pytest.raises(ValueError, match="line 2"):
        History.load_jsonl(path)


def test_2_cli_writes_the_finished_rounds_when_the_run_diverges(tmp_path, capsys):
    code = main(["run", "--algorithm", "fedavg", "--dataset", "ridge", "--model", "linreg",
                 "--lr", "1.0", "--rounds", "30", "--local-steps", "5", "--device", "cpu",
                 "--num-clients", "3", "--output-dir", str(tmp_path)])
    assert code == 1
    line = one_error_line(capsys.readouterr().err, "train_loss", "divergence_factor")
    saved = History.load_json(tmp_path / "fedavg.history.json")
    assert 1 <= len(saved.records) < 30
    assert f"round {len(saved.records)} " in line


# ------------------------------------------------------------------- 3. resume from the CLI


def test_3_cli_resumes_and_the_history_describes_itself(tmp_path, capsys):
    args = ["run", *TINY_ARGS, "--algorithm", "feddlr", "--output-dir", str(tmp_path)]
    assert main([*args, "--rounds", "2", "--checkpoint-every", "1"]) == 0
    assert main([*args, "--rounds", "4", "--resume-from", str(tmp_path)]) == 0
    resumed = History.load_json(tmp_path / "feddlr.history.json")
    assert resumed.config["rounds"] == 4 and [r.round for r in resumed.records] == [1, 2, 3, 4]
    assert records(resumed) == records(run(tiny(algorithm="feddlr", rounds=4)).history)
    assert main([*args, "--rounds", "4", "--resume-from", str(tmp_path / "nothing")]) == 2
    one_error_line(capsys.readouterr().err, "--resume-from")


# --------------------------------------------------- 4. compare keeps finished algorithms


def test_4_compare_keeps_finished_algorithms_and_fails_at_the_end(tmp_path, capsys,
                                                                    monkeypatch):
    real = fl_sim.simulator.run

    def fail_feddlr(cfg, **kwargs):
        if cfg.algorithm == "feddlr":
            raise RuntimeError("boom in feddlr")
        return real(cfg, **kwargs)

    monkeypatch.setattr(fl_sim.simulator, "run", fail_feddlr)
    code = main(["compare", "--algorithms", "fedavg", "feddlr", "qsgd", *TINY_ARGS,
                 "--rounds", "2", "--output-dir", str(tmp_path)])
    assert code == 1
    one_error_line(capsys.readouterr().err, "1 of 3 algorithms failed", "feddlr", "boom")
    for name in ("fedavg", "qsgd"):  # the one after the failure ran too
        assert len(History.load_json(tmp_path / f"{name}.history.json").records) == 2
    assert not (tmp_path / "feddlr.history.json").exists()


# ----------------------------------------------------- 5. experiments never touch docs/


def test_5_experiments_default_to_a_fresh_folder_and_never_overwrite(tmp_path, capsys,
                                                                     monkeypatch):
    import experiments.__main__ as exp

    monkeypatch.chdir(tmp_path)
    first = exp._fresh_run_folder()
    assert first.parts[:2] == ("runs", "experiments")
    first.mkdir(parents=True)
    assert exp._fresh_run_folder() != first  # never an existing folder
    results = tmp_path / "docs" / "results"
    results.mkdir(parents=True)
    (results / "results.json").write_text('{"committed": true}')
    monkeypatch.setattr(exp, "untimed", lambda *a, **k: pytest.fail("ran"))
    assert exp.main(["--quick", "--out", str(results)]) == 2
    one_error_line(capsys.readouterr().err, "--overwrite")
    assert json.loads((results / "results.json").read_text()) == {"committed": True}


# ------------------------------------------------------------- 18. one line, exit 2


@pytest.mark.parametrize("argv, needle", [
    (["run", "--num-clients", "abc"], "--num-clients"),
    (["run", "--vectorized", "flase"], "--vectorized"),
    (["run", "--policy-overrides", "[1,2]"], "--policy-overrides"),
    (["run", "--rounds", "0"], "rounds"),
    (["run", "--policy-up", "energy:"], "policy_up"),
    (["run", "--device", "tpu"], "device"),
    (["run", "--bogus-flag", "1"], "--bogus-flag"),
    (["compare", "--algorithms", "fedavg", "bogus"], "algorithm"),
    (["run", "--method", "randomized", "--policy-up", "energy:0.9"], "max_rank"),
])
def test_18_fl_sim_errors_are_one_line_exit_2(argv, needle, capsys, tmp_path):
    assert main([*argv, "--output-dir", str(tmp_path)]) == 2
    one_error_line(capsys.readouterr().err, needle)
    assert not list(tmp_path.iterdir())  # nothing ran, nothing was written


def test_18_debug_prints_the_traceback(capsys):
    assert main(["run", "--rounds", "0", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: rounds")


def test_18_boundcheck_entry_point_prints_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "boundcheck", "check", "--seeds", "1",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    one_error_line(proc.stderr, "seeds")


def test_18_divergence_error_names_the_round(tmp_path):
    cfg = tiny(algorithm="fedavg", dataset="ridge", model="linreg", lr=1.0, rounds=30,
               local_steps=5, policy_overrides={}, model_kwargs={})
    with pytest.raises(DivergenceError, match=r"train_loss: .* at round \d+ .*lr"):
        run(cfg)
    assert len(run(cfg.replace(divergence_factor=None, rounds=3)).history.records) == 3
