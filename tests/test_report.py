"""The flow's report as a reader sees it: one run of ``tapmesh flow --fast``, then its summary, its tables
(units, no raw JSON keys), one set of numbers everywhere, every figure free of overlapping labels, and
the page rendered by a real browser (headless Chromium: every image loads, nothing overflows)."""

from __future__ import annotations

import html as html_module
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_cli import tapmesh

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def flow_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow")
    result = tapmesh("flow", "--fast", "--out", str(out), "--json", "--seed", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_flow_ends_with_a_headline_and_the_report_path(flow_out):
    out, result = flow_out
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    for stage in ("layout", "extract", "simulate", "fabricate", "calibrate", "train", "report"):
        assert stage in summary
    assert lines[-2] == f"report: {out / 'report.html'}"
    assert re.match(r"tapmesh flow: done in \d+ s", lines[-3])
    text = "\n".join(lines[-8:])
    assert "uncorrected →" in text and "corrected" in text and "%" in text and "digital twin" in text
    for name in ("chip.gds", "chip_map.json", "calibration.json", "training.json", "flow.json"):
        assert (out / name).exists()
    # a failed later stage leaves the earlier outputs intact
    before = (out / "calibration.json").read_bytes()
    assert tapmesh("train", "--task", "nope", "--out", str(out)).returncode == 2
    assert (out / "calibration.json").read_bytes() == before


def test_report_has_a_summary_sentences_and_tables_with_units(flow_out):
    out, _ = flow_out
    page = (out / "report.html").read_text()
    for section in ("summary", "layout", "model", "calibration", "training"):
        assert f'id="{section}"' in page
    assert "No results" not in page
    assert page.count("data:image/png;base64") >= 5
    text = html_module.unescape(re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]+"', "", page)))
    for label in ("chip", "fidelity before → after correction", "test accuracy, chip vs twin", "bench time",
                  "tapmesh version", "command", "date", "tapmesh flow --fast"):
        assert label in text
    for unit in ("(dB)", "(rad)", "(%)", "(s)", "(rad/V²)", "(MB)"):
        assert unit in text
    for raw in ("rms_residual", "mean_fidelity", "n_measurements", "best_test_accuracy", "insertion_loss_db", "_seconds"):
        assert raw not in text, f"raw JSON key {raw} in the report"
    assert not re.search(r"\d\.\d{7,}", text), "numbers with more digits than they carry"
    figure_captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert len(figure_captions) >= 5 and not any(c.endswith(".png") for c in figure_captions)


def test_one_set_of_numbers_everywhere(flow_out):
    out, _ = flow_out
    training = json.loads((out / "training.json").read_text())
    chip = training["chip"]
    history = chip["history"]
    assert chip["test_accuracy"] == history["test_acc"][chip["epoch_kept"] - 1]
    assert chip["best_test_accuracy"] == max(history["test_acc"])
    assert history["epoch"][int(np.argmax(history["test_acc"]))] == chip["best_test_epoch"]
    page = (out / "report.html").read_text()
    assert f"{100 * chip['test_accuracy']:.1f} % in situ" in page
    cal = json.loads((out / "calibration_summary.json").read_text())
    assert f"{cal['mean_fidelity_uncorrected']:.4f} → {cal['mean_fidelity_corrected']:.4f}" in page


def test_figures_of_the_flow_have_no_overlapping_labels(flow_out):
    from tapmesh import circuits, training
    from tapmesh.calibration import Calibration, plot_fits, plot_residuals
    from tapmesh.figures import overlapping_labels, simulation_figure

    out, _ = flow_out
    cal = Calibration.load(out / "calibration.json")
    record = json.loads((out / "training.json").read_text())
    histories = {}
    for key, label in (("chip", "insitu on chip"), ("twin", "autodiff on twin")):
        histories[label] = training.History(**record[key]["history"])
    net = training.PhotonicNetwork(cal.topology, n_layers=3, n_classes=2, calibrations=cal, **training.IN_SITU.network)
    top = circuits.rectangular(8)
    params = circuits.MeshParams.random(top, seed=0, delta_sigma=0.02, loss_db_sigma=0.05, tap_fraction=0.02)
    wl = np.linspace(1.5, 1.6, 21)
    sweep = np.abs(np.asarray(circuits.unitary(top, params, wl=wl))) ** 2
    figures = {
        "calibration_residuals": plot_residuals(cal),
        "calibration_fits": plot_fits(cal),
        "training_curves": training.plot_training(histories, marks={"insitu on chip": record["chip"]["epoch_kept"]}),
        "decision_boundary": training.plot_decision_boundary(
            net, net.init(0), training.data.moons(n_samples=200), resolution=20, accuracy=0.987,
            title="moons: test accuracy 98.7 % on chip (epoch 3)"),
        "simulation": simulation_figure(np.asarray(circuits.unitary(top, params)), wl, sweep, "rectangular"),
    }
    for name, fig in figures.items():
        assert overlapping_labels(fig) == [], name
        for ax in fig.axes:
            if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>":
                assert ax.get_xlabel() and ax.get_ylabel(), f"{name}: a panel without axis labels"
    assert "98.7 %" in figures["decision_boundary"].axes[0].get_title()
    # the fits are drawn as smooth curves (many points), the readings as markers
    fit_lines = [line for ax in figures["calibration_fits"].axes for line in ax.get_lines() if line.get_label() == "fit"]
    assert fit_lines and all(len(line.get_xdata()) >= 200 for line in fit_lines)


def test_overlap_check_finds_overlapping_labels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tapmesh.figures import overlapping_labels

    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, "first label")
    ax.text(0.52, 0.5, "second label")
    assert overlapping_labels(fig)
    plt.close(fig)


CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const width = document.documentElement.clientWidth;
  const wide = Array.from(document.querySelectorAll("body *")).filter(e => e.getBoundingClientRect().right > width + 1);
  const result = {images: images.length, broken: images.filter(i => !i.complete || i.naturalWidth === 0).length,
                  scrollWidth: document.documentElement.scrollWidth, clientWidth: width,
                  overflowing: wide.map(e => e.tagName + (e.id ? "#" + e.id : ""))};
  const pre = document.createElement("pre");
  pre.id = "check"; pre.style.display = "none"; pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (/usr/bin/chromium)")
@pytest.mark.parametrize("width", [1280, 820])
def test_report_renders_in_chromium(flow_out, tmp_path, width):
    out, _ = flow_out
    page = (out / "report.html").read_text().replace("</body>", CHECK_SCRIPT + "</body>")
    probe = tmp_path / "report_check.html"
    probe.write_text(page)
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--window-size={width},900", "--virtual-time-budget=10000",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    found = re.search(r'<pre id="check"[^>]*>(.*?)</pre>', result.stdout, re.S)
    assert found, result.stderr[-2000:]
    check = json.loads(html_module.unescape(found.group(1)))
    assert check["images"] >= 5 and check["broken"] == 0
    assert check["scrollWidth"] <= check["clientWidth"] and check["overflowing"] == [], check
