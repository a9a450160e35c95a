"""The CLI as a user runs it: a subprocess, one-line errors with exit codes, --json summaries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def tapmesh(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "tapmesh", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=900,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tapmesh ") and "error:" in lines[0]
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def test_help_explains_units():
    result = tapmesh("--help")
    assert result.returncode == 0
    for command in ("flow", "layout", "simulate", "calibrate", "train", "report"):
        assert command in result.stdout
    assert "µm" in result.stdout


def test_negative_n(tmp_path):
    assert_one_line_error(tapmesh("simulate", "--n", "-3", "--out", str(tmp_path)), 2, "--n")
    assert_one_line_error(tapmesh("layout", "--n", "-1", "--out", str(tmp_path)), 2, "--n")


def test_unknown_task(tmp_path):
    assert_one_line_error(tapmesh("train", "--task", "mnist", "--out", str(tmp_path)), 2, "mnist")
    assert_one_line_error(tapmesh("flow", "--task", "mnist", "--out", str(tmp_path)), 2, "mnist")


def test_unknown_kind(tmp_path):
    assert_one_line_error(tapmesh("simulate", "--kind", "hexagonal", "--out", str(tmp_path)), 2, "hexagonal")


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_line_error(tapmesh("simulate", "--out", str(blocker)), 2, "--out", "is a file")
    assert_one_line_error(tapmesh("simulate", "--out", str(blocker / "sub")), 2, "--out", "is under")
    assert_one_line_error(tapmesh("layout", "--out", str(blocker / "sub" / "x.gds")), 2, "--out")


@pytest.mark.parametrize(
    "args, option",
    [
        (("simulate", "--n", "eight"), "--n"),
        (("simulate", "--seed", "-1"), "--seed"),
        (("flow", "--seed", "-1"), "--seed"),
        (("calibrate", "--seed", "-1"), "--seed"),
        (("layout", "--seed", "-1"), "--seed"),
        (("simulate", "--wl-span", "-0.1"), "--wl-span"),
        (("simulate", "--wl-span", "nan"), "--wl-span"),
        (("train", "--epochs", "0"), "--epochs"),
        (("flow", "--epochs", "-5"), "--epochs"),
        (("train", "--layers", "two"), "--layers"),
        (("layout", "--n", "65"), "--n"),
        (("flow", "--n", "1"), "--n"),
        (("simulate", "--n", "100000"), "--n"),
        (("flow", "--method", "magic"), "--method"),
        (("simulate", "--frobnicate"), "--frobnicate"),
    ],
)
def test_malformed_options_are_one_line_and_write_nothing(tmp_path, args, option):
    out = tmp_path / "out"
    assert_one_line_error(tapmesh(*args, "--out", str(out)), 2, option)
    assert not out.exists(), "a rejected command must not write anything"


def test_a_folder_holding_another_chip_is_not_reused(tmp_path):
    from tapmesh import stages

    stages.fabricate(tmp_path, seed=0)
    before = (tmp_path / "fabrication.json").read_bytes()
    result = tapmesh("calibrate", "--seed", "1", "--out", str(tmp_path))
    assert_one_line_error(result, 2, "another chip", "--seed 0", "--force")
    assert (tmp_path / "fabrication.json").read_bytes() == before and not (tmp_path / "calibration.json").exists()
    assert_one_line_error(tapmesh("flow", "--seed", "2", "--out", str(tmp_path)), 2, "--force")
    (tmp_path / "layout.json").write_text(json.dumps({"demo": True, "n": 6, "kind": "triangular"}))
    assert_one_line_error(tapmesh("layout", "--n", "3", "--kind", "rectangular", "--out", str(tmp_path)), 2, "demo chip", "--force")


def test_a_layout_on_another_pdk_or_pads_is_another_chip(tmp_path):
    held = {"demo": False, "n": 4, "kind": "rectangular", "pads": "bumps", "pdk": "ubcpdk"}
    (tmp_path / "layout.json").write_text(json.dumps(held))
    from tapmesh.options import UsageError, check_same_chip

    generic = {"demo": False, "n": 4, "kind": "rectangular", "pads": "direct", "pdk": "generic"}
    with pytest.raises(UsageError, match=r"--pads bumps, not --pads direct.*--pdk ubcpdk, not --pdk generic.*--force"):
        check_same_chip(tmp_path, layout=generic)  # what `tapmesh layout --n 4 --kind rectangular` asks
    assert len(check_same_chip(tmp_path, layout=generic, force=True)) == 2
    from typer.testing import CliRunner

    from tapmesh.cli import app

    before = (tmp_path / "layout.json").read_bytes()
    result = CliRunner().invoke(app, ["layout", "--n", "4", "--kind", "rectangular", "--pads", "bumps", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--pdk ubcpdk, not --pdk generic" in result.output  # the pads agree: not named
    assert "--pads bumps, not" not in result.output
    assert (tmp_path / "layout.json").read_bytes() == before
    assert check_same_chip(tmp_path, layout={"demo": False, "n": 4, "kind": "rectangular", "pads": "bumps", "pdk": "ubcpdk"}) == []
    # a layout.json written before the PDK was recorded: the generic PDK, direct pads
    (tmp_path / "layout.json").write_text(json.dumps({"demo": False, "n": 4, "kind": "rectangular"}))
    assert check_same_chip(tmp_path, layout={"demo": False, "n": 4, "kind": "rectangular", "pads": "direct", "pdk": "generic"}) == []


def test_corrupt_calibration_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text('{"format_version": 1, "calibration": {"phase_offsets": [1, 2')
    before = path.read_bytes()
    result = tapmesh("train", "--out", str(tmp_path))
    assert_one_line_error(result, 2, "calibration.json")
    assert path.read_bytes() == before


def test_missing_calibration(tmp_path):
    assert_one_line_error(tapmesh("train", "--out", str(tmp_path)), 2, "calibrate")


def test_debug_shows_traceback(tmp_path):
    result = tapmesh("train", "--out", str(tmp_path), "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr and "FileNotFoundError" in result.stderr


def test_simulate_json_summary(tmp_path):
    result = tapmesh("simulate", "--n", "3", "--no-sax", "--out", str(tmp_path), "--json", "--seed", "4")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["command"] == "simulate" and summary["n_mzis"] == 3
    assert summary["decomposition_max_error"] < 1e-10
    assert (tmp_path / "simulation.png").stat().st_size > 0
    assert json.loads((tmp_path / "simulation.json").read_text())["n"] == 3
    # the human summary: headline numbers with units, the files written, the report's path
    text = result.stdout
    assert "3-mode rectangular mesh: 3 MZIs" in text and " dB at 1.55 µm" in text
    assert f"wrote: {tmp_path / 'simulation.json'}" in text
    assert summary["report"] == str(tmp_path / "report.html") and (tmp_path / "report.html").exists()
    assert text.strip().splitlines()[-2] == f"report: {tmp_path / 'report.html'}"


def test_report_on_empty_folder_says_so(tmp_path):
    result = tapmesh("report", "--out", str(tmp_path), "--json")
    assert result.returncode == 0
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert not any(summary["sections"].values())
    assert "No results" in (tmp_path / "report.html").read_text()


def test_layout_to_a_gds_path_also_writes_a_png(tmp_path):
    result = tapmesh("layout", "--n", "3", "--kind", "rectangular", "--out", str(tmp_path / "mesh.gds"), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n_heaters"] == 2 * 3 + 3 and summary["n_taps"] == 2 * summary["n_heaters"]
    assert (tmp_path / "mesh.gds").stat().st_size > 0 and (tmp_path / "mesh.png").stat().st_size > 0
    assert (tmp_path / "chip_map.json").exists()


def test_layout_staggers_edge_pads_from_the_cli_and_names_bad_offsets(tmp_path):
    from typer.testing import CliRunner

    from tapmesh.cli import app

    runner = CliRunner()
    base = ["layout", "--n", "8", "--kind", "rectangular", "--no-png"]
    for extra, says in ((["--pads", "direct", "--pad-stagger", "20"], "applies to --pads edge only"),
                        (["--pads", "edge", "--pad-stagger", "0"], "finite number of µm > 0"),
                        (["--pads", "edge", "--pad-stagger", "half"], "expected none, auto or a row offset")):
        bad = runner.invoke(app, base + extra + ["--out", str(tmp_path / "bad")])
        assert bad.exit_code == 2 and says in bad.output and len(bad.output.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()  # refused before the folder was made
    ok = runner.invoke(app, base + ["--pads", "edge", "--pad-stagger", "auto", "--out", str(tmp_path / "st")])
    assert ok.exit_code == 0, ok.output
    layout = json.loads((tmp_path / "st" / "layout.json").read_text())
    assert layout["pad_stagger"] == "auto" and "die " in ok.output
    aligned = runner.invoke(app, base + ["--pads", "edge", "--out", str(tmp_path / "st")])
    assert aligned.exit_code == 2 and "--pad-stagger auto, not --pad-stagger none" in aligned.output
    demo = runner.invoke(app, ["layout", "--pads", "edge", "--pad-stagger", "auto", "--out", str(tmp_path / "d")])
    assert demo.exit_code == 2 and "needs --n" in demo.output
    # a stagger the pad rules refuse fails in the build, before --force forgets the folder's chip
    before = {p.name: p.read_bytes() for p in (tmp_path / "st").iterdir()}
    clash = runner.invoke(app, base + ["--pads", "edge", "--pad-stagger", "1", "--force", "--out", str(tmp_path / "st")])
    assert clash.exit_code == 2 and "StaggerError" in clash.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "st").iterdir()} == before


def test_layout_fanout_pads_and_the_pdks_default(tmp_path):
    """--pads fanout lays out the planar fan-out; --pads auto (the default) is the PDK's own choice, recorded
    as what it resolved to, so a folder laid out with the explicit name is the same chip."""
    from typer.testing import CliRunner

    from tapmesh.cli import app

    runner = CliRunner()
    base = ["layout", "--n", "4", "--kind", "rectangular", "--no-png"]
    ok = runner.invoke(app, base + ["--pads", "fanout", "--out", str(tmp_path / "f")])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "f" / "layout.json").read_text())["pads"] == "fanout"
    assert "die " in ok.output
    auto = runner.invoke(app, base + ["--out", str(tmp_path / "a")])  # generic: direct drive
    assert auto.exit_code == 0, auto.output
    assert json.loads((tmp_path / "a" / "layout.json").read_text())["pads"] == "direct"
    again = runner.invoke(app, base + ["--pads", "direct", "--out", str(tmp_path / "a")])
    assert again.exit_code == 0, again.output  # the same chip: no --force needed
    demo = runner.invoke(app, ["layout", "--pads", "fanout", "--out", str(tmp_path / "d")])
    assert demo.exit_code == 2 and "needs --n" in demo.output
    bad = runner.invoke(app, base + ["--pads", "fan", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "fanout" in bad.output


def test_layout_balanced_taps_is_recorded_and_followed_by_the_folders_chip(tmp_path):
    """--balanced-taps: layout.json and the chip map say so, the folder's virtual chip is fabricated with
    dummy taps, the same folder re-laid-out without them is another chip, and the demo chip refuses it."""
    from typer.testing import CliRunner

    from tapmesh import stages
    from tapmesh.cli import app

    runner = CliRunner()
    out = tmp_path / "mesh"
    done = runner.invoke(app, ["layout", "--n", "4", "--kind", "rectangular", "--balanced-taps", "--no-png", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert json.loads((out / "layout.json").read_text())["balanced_taps"] is True
    assert json.loads((out / "chip_map.json").read_text())["balanced_taps"] is True
    chip = stages.virtual_chip(out, seed=2)
    assert chip.truth.idle_loss_db is not None and np.all(chip.truth.loss_db[:, [1, 3]] > 0)
    again = runner.invoke(app, ["layout", "--n", "4", "--kind", "rectangular", "--no-png", "--out", str(out)])
    assert again.exit_code == 2 and "--balanced-taps" in again.output
    demo = runner.invoke(app, ["layout", "--balanced-taps", "--out", str(tmp_path / "demo")])
    assert demo.exit_code == 2 and "needs --n" in demo.output and not (tmp_path / "demo").exists()
