"""bench/report.py's checks fail when they should: the CI smoke run of the
peer benchmark (bench/run.sh --smoke) relies on them."""

import importlib.util
import json
import pathlib
import struct

spec = importlib.util.spec_from_file_location("report", pathlib.Path(__file__).parents[2] / "bench/report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)

SCORES = [0.3, 0.1, 0.05, 0.05, 0.1, 0.1, 0.1, 0.05, 0.1, 0.05]


def line(model, peer, scores=SCORES, **kw):
    r = {"model": model, "peer": peer, "runtime": peer, "median_us": 10.0, "p99_us": 20.0,
         "batch32_per_s": 1e5, "peak_rss_kib": 50000, "scores": list(scores), "round": 1}
    r.update(kw)
    return r


def run(tmp_path, lines):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return report.check(report.load(path))


def good():
    return [line(m, p) for m in ("MLP f32", "MLP int8") for p in ("kiln-native", "kiln-warm", "ort-web")]


def test_consistent_results_pass(tmp_path):
    assert run(tmp_path, good()) == []


def test_a_kiln_runner_one_ulp_off_fails(tmp_path):
    lines = good()
    bits = struct.unpack("<I", struct.pack("<f", SCORES[0]))[0] + 1
    lines[1]["scores"][0] = struct.unpack("<f", struct.pack("<I", bits))[0]
    assert any("kiln-warm" in p and "bits" in p for p in run(tmp_path, lines))


def test_a_peer_outside_tolerance_fails(tmp_path):
    lines = good()
    lines[2]["scores"][0] += 1e-3  # f32 model: tolerance 1e-5
    assert any("ort-web" in p for p in run(tmp_path, lines))
    lines = good()
    lines[5]["scores"][0] += 1e-3  # int8 model: within 0.02 of kiln's f32
    assert run(tmp_path, lines) == []
    lines[5]["scores"][0] += 0.05
    assert any("MLP int8 / ort-web" in p for p in run(tmp_path, lines))


def test_non_finite_or_zero_figures_fail(tmp_path):
    lines = good()
    lines[0]["median_us"] = float("nan")
    lines[2]["batch32_per_s"] = 0
    problems = run(tmp_path, lines)
    assert any("median_us" in p for p in problems) and any("batch32_per_s" in p for p in problems)
