"""``bench/gpu.py`` — the GPU readiness check — runs small on the CPU, so it cannot rot before a GPU is lent."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu.py"


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_gpu", None)


def test_small_run_times_epochs_and_scores_every_account(gpu_bench) -> None:
    args = ["--small", "--device", "cpu", "--epochs", "2", "--hidden", "16", "--fanout", "5", "5"]
    args += ["--nodes", "3000", "--edges", "20000", "--score-accounts", "1500", "--batch-size", "100"]
    result = gpu_bench.main(args)
    graph = result["graph"]
    assert graph["nodes"] == 3000 and graph["edges"] == 20000 and graph["train_seeds"] == 240
    ours = result["training"]["ours"]
    assert ours["batches_per_epoch"] == math.ceil(240 / 100)
    assert len(ours["epochs"]) == 2 and not ours["partial"]
    assert all(e["batches"] == 3 and e["seconds"] > 0 and math.isfinite(e["mean_loss"]) for e in ours["epochs"])
    assert ours["epochs"][1]["mean_loss"] < ours["epochs"][0]["mean_loss"] * 1.5  # it trains, it does not blow up
    scoring = result["scoring"]
    assert scoring["accounts"] == 1500 and scoring["finite"]
    assert 0 < scoring["edges"] < 20000  # only the edges among the scored accounts
    assert result["summary"]["epoch_s"] == ours["epoch_s"]
    if not result["environment"]["pyg_lib"]:
        assert result["training"]["pyg"] == {"available": False, "reason": "pyg-lib is not importable here"}


def test_time_limit_stops_an_epoch_early_and_extrapolates(gpu_bench) -> None:
    args = ["--small", "--device", "cpu", "--epochs", "3", "--hidden", "8", "--fanout", "3"]
    args += ["--nodes", "2000", "--edges", "8000", "--score-accounts", "100", "--batch-size", "10"]
    result = gpu_bench.main([*args, "--time-limit", "0"])
    ours = result["training"]["ours"]
    assert ours["partial"] and len(ours["epochs"]) == 1
    first = ours["epochs"][0]
    assert first["batches"] == 1 < ours["batches_per_epoch"] == 16
    assert result["scoring"]["accounts"] == 100  # scoring still runs after an early stop
