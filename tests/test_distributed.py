from __future__ import annotations

import os
import socket

import pytest
import torch.multiprocessing as mp

from robench._dist import shard
from robench.evaluate import EvalConfig, run_eval
from robench.report import write_reports
from tests._helpers import assert_same_per_image


@pytest.mark.parametrize(("n", "world"), [(101, 2), (7, 3), (2, 4), (0, 2), (1000, 7)])
def test_shards_cover_every_index_exactly_once(n, world):
    parts = [shard(range(n), r, world) for r in range(world)]
    flat = [i for p in parts for i in p]
    assert flat == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch

    from tests.conftest import FakeModel, tiny_net

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    models = [FakeModel("tiny-gap", "tiny", "gap", 10, "a" * 64, tiny_net(0)),
              FakeModel("tiny-gcp", "tiny", "gcp", 10, "b" * 64, tiny_net(1))]
    run_eval(EvalConfig(out=out, limit=101, batch_size=16), models=models)
    import torch.distributed as dist

    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_give_the_one_process_results(tmp_path, fake_models):
    single = tmp_path / "single"
    run_eval(EvalConfig(out=single, limit=101, batch_size=16), models=fake_models)
    write_reports(single / "results.sqlite", single)
    multi = tmp_path / "multi"
    mp.spawn(_worker, args=(2, _free_port(), str(multi)), nprocs=2, join=True)
    write_reports(multi / "results.sqlite", multi)
    assert (single / "results.csv").read_bytes() == (multi / "results.csv").read_bytes()
    assert (single / "leaderboard.csv").read_bytes() == (multi / "leaderboard.csv").read_bytes()
    assert assert_same_per_image(single / "results.sqlite", multi / "results.sqlite") > 0
