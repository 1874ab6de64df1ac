"""Two CPU processes with gloo take the same steps as one process on the same global batch."""

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import TEST_ARCH, TINY_TRAIN
from test_training import splits

from modaclip.model.clip_model import create_base_model
from modaclip.train.distributed import DistContext, init_distributed, mean_over_ranks, shutdown
from modaclip.train.run_identity import RunIdentity
from modaclip.train.trainer import Trainer

LOSSES = ["clip", "multipos", "fields"]
STEPS = 2


def train_steps(
    clean_dir: Path, checkpoints: Path, loss: str, batch_size: int, context: DistContext
) -> tuple[list[float], dict, dict]:
    """Losses of STEPS optimizer steps, the gradients of the first one and the weights after all."""
    train, val = splits(clean_dir)
    params = TINY_TRAIN.model_copy(update={"loss": loss, "batch_size": batch_size})
    bundle = create_base_model(TEST_ARCH, "none", params.seed)
    trainer = Trainer(
        bundle,
        train,
        val,
        params,
        checkpoint_dir=checkpoints,
        identity=RunIdentity({}),
        device=torch.device("cpu"),
        context=context,
    )
    loader = iter(trainer.loader(0))
    losses = [trainer.train_step([next(loader)])]
    grads = {n: p.grad.clone() for n, p in bundle.model.named_parameters() if p.grad is not None}
    losses += [trainer.train_step([next(loader)]) for _ in range(STEPS - 1)]
    return losses, grads, {k: v.detach().clone() for k, v in bundle.model.state_dict().items()}


def rank_main(rank: int, world_size: int, port: int, clean_dir: Path, out: Path) -> None:
    """One process as torchrun starts it: the variables torchrun sets, then the stage's own init_distributed."""
    torch.set_num_threads(1)
    os.environ.update(
        {"WORLD_SIZE": str(world_size), "RANK": str(rank), "LOCAL_RANK": str(rank)}
        | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )
    context, device = init_distributed("cpu")
    assert (context.rank, context.world_size, context.local_rank, device.type) == (rank, world_size, rank, "cpu")
    mean_rank = mean_over_ranks(torch.tensor(float(rank)), context)
    results = {
        loss: train_steps(clean_dir, out / f"ckpt-{rank}", loss, 8, DistContext(rank, world_size)) for loss in LOSSES
    }
    if rank == 0:
        torch.save({"mean_rank": mean_rank, "losses": results}, out / "ranks.pt")
    shutdown(context)
    assert not dist.is_initialized()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_match_one_process_on_the_global_batch(clean_dir: Path, tmp_path: Path) -> None:
    mp.spawn(rank_main, args=(2, free_port(), clean_dir, tmp_path), nprocs=2, join=True)
    saved = torch.load(tmp_path / "ranks.pt", weights_only=False)
    assert saved["mean_rank"] == 0.5  # (0 + 1) / 2: the ranks' losses are averaged the same way
    distributed = saved["losses"]
    for loss in LOSSES:
        single_losses, single_grads, single_weights = train_steps(
            clean_dir, tmp_path / "single", loss, 16, DistContext()
        )
        ranks_losses, ranks_grads, ranks_weights = distributed[loss]
        assert ranks_losses == pytest.approx(single_losses, abs=1e-5), loss
        assert ranks_grads.keys() == single_grads.keys()
        for name, value in single_grads.items():
            assert torch.allclose(ranks_grads[name], value, rtol=1e-3, atol=1e-6), (loss, name)
        # Adam's first steps move each weight by about lr * sign(grad), so weights whose true gradient
        # is zero (attention key biases) follow float noise; all but those agree to 1e-5.
        close = sum(torch.isclose(ranks_weights[n], v, atol=1e-5).sum().item() for n, v in single_weights.items())
        total = sum(v.numel() for v in single_weights.values())
        assert close / total > 0.9999, (loss, close / total)
