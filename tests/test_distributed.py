"""Training under torchrun: each image once per epoch across ranks, the global-batch gradient, one run written."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from explorer.training.distributed import DistContext, batch_bounds, local_share, loss_weight

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n,batch,world", [(1003, 64, 2), (129, 64, 3), (640, 64, 2), (7, 64, 2), (130, 64, 4)])
def test_every_image_once_per_epoch_across_ranks(n, batch, world):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    seen: list[int] = []
    for start, end in batch_bounds(n, batch, min_last=max(2, world)):
        shares = [local_share(order[start:end], DistContext(rank, world, rank, "gloo")) for rank in range(world)]
        assert all(len(share) >= 1 for share in shares)  # no rank is left without images (it would hang DDP)
        for share in shares:
            seen += share.tolist()
    assert sorted(seen) == list(range(n))  # each exactly once


def test_weighted_rank_losses_average_to_the_global_batch_gradient():
    torch.manual_seed(0)
    weight = torch.randn(3, 5, requires_grad=True)
    x, y = torch.randn(11, 5), torch.randint(0, 3, (11,))
    (expected,) = torch.autograd.grad(F.cross_entropy(x @ weight.T, y), weight)  # one process, whole batch
    world = 2
    grads = []
    for rank in range(world):  # what DDP does: each rank's gradient, then their mean
        idx = local_share(torch.arange(11), DistContext(rank, world, rank, "gloo"))
        loss = F.cross_entropy(x[idx] @ weight.T, y[idx]) * loss_weight(len(idx), 11, DistContext(rank, world, rank, "gloo"))
        grads.append(torch.autograd.grad(loss, weight)[0])
    assert torch.allclose(sum(grads) / world, expected, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_write_one_run_matching_a_single_process(tmp_path):
    env = {**os.environ, "EXPLORER_RUNS_DIR": str(tmp_path / "runs"), "PYTHONPATH": str(ROOT),
           "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    # scikit-learn's real digits: a run that converges in seconds, so the two accuracies are comparable
    args = ["train", "--model", "mnist_cnn", "--dataset", "digits", "--epochs", "30", "--batch", "32", "--lr", "0.003",
            "--schedule", "cosine"]
    single = tmp_path / "runs" / "single"
    dist = tmp_path / "runs" / "dist"
    subprocess.run([sys.executable, "-m", "explorer", *args, "--out", str(single)], env=env, check=True,
                   capture_output=True, timeout=600, cwd=ROOT)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={_free_port()}", "-m", "explorer", *args, "--out", str(dist)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("finished: test accuracy") == 1  # rank 0 alone reports
    config = json.loads((dist / "config.json").read_text())
    assert config["distributed"] == {"world_size": 2, "backend": "gloo", "launcher": "torchrun"}
    metrics = json.loads((dist / "metrics.json").read_text())
    train_images = sum(config["counts"]["train"].values())
    assert [e["samples"] for e in metrics["epochs"]] == [train_images] * 30  # each image once per epoch, all ranks
    single_acc = json.loads((single / "metrics.json").read_text())["test_accuracy"]
    assert abs(metrics["test_accuracy"] - single_acc) <= 0.02, (metrics["test_accuracy"], single_acc)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["dist", "single"]  # no stray folders


def test_the_training_labs_command_line_parses_back_to_the_same_run():
    import shlex

    from explorer.cli import build_parser
    from explorer.training import TrainConfig

    config = TrainConfig(model="arch:conv3-8 M FC-10", dataset="shapes", epochs=3, batch_size=32, lr=0.003,
                         optimizer="sgd", schedule="cosine", augment=True, image_size=32, samples=1234, seed=7)
    args = build_parser().parse_args(shlex.split(config.cli_command("runs/x")))
    assert (args.model, args.dataset, args.epochs, args.batch, args.lr, args.optimizer, args.schedule, args.augment,
            args.image_size, args.samples, args.seed, args.out) == (
        "arch:conv3-8 M FC-10", "shapes", 3, 32, 0.003, "sgd", "cosine", True, 32, 1234, 7, "runs/x")
