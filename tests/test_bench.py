"""The supernet benchmark prints its figures (and, asked to, where the time went)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_supernet_json_with_profile():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "bench_supernet.py"), "--image-shape",
         "3,8,8", "--batch-size", "2", "--width-mult", "0.25", "--steps", "1", "--warmup", "0",
         "--json", "--profile", "theta"],
        capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    for key in ("weight_samples_per_s", "theta_samples_per_s", "peak_rss_mib"):
        assert result[key] > 0
    ops = {row["operator"]: row for row in result["profile"]}
    assert "Convolution" in ops and "_backward_Convolution" in ops  # ops timed one by one
    assert all(row["calls"] > 0 and row["ms"] >= 0 for row in result["profile"])
    assert sum(row["percent"] for row in result["profile"]) <= 100.0 + 1e-6


def test_bench_faces_json():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "bench_faces.py"), "--images", "40",
         "--batch-size", "16", "--rounds", "1", "--pairs", "10", "--width-mult", "0.25", "--json"],
        capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    for size in ("112x112", "32x32"):
        speeds = result["reader_images_per_s"][size]
        assert speeds["identity_indexed"] > 0 and speeds["flat"] > 0
        assert speeds["flat_image_record_iter"] > 0
    assert result["verification"]["pairs"] == 10 and result["verification"]["seconds"] > 0


def test_bench_loop_reports_the_loop_beside_the_data_free_step():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "bench_loop.py"), "--preset", "seed",
         "--image-shape", "3,8,8", "--width-mult", "0.25", "--batch-size", "4", "--steps", "2",
         "--rounds", "1", "--threads", "1", "--json"],
        capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    for key in ("step_weight", "step_theta", "loop_weight", "loop_theta"):
        assert result["median"][key] > 0, key
    assert result["omp_threads"] == 1 and result["loop_over_step"] > 0
