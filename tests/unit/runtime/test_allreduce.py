import pytest
import torch

from tasks.communication import tensor_sizes
from tasks.runtime.allreduce import backend_availability, bus_bandwidth

pytestmark = pytest.mark.unit


def test_default_sizes_are_mlbench_80_log_spaced_from_1_to_1e8():
    sizes = tensor_sizes()
    assert sizes[0] == 1 and sizes[-1] == 10**8
    assert len(sizes) == len(set(sizes)) and 70 <= len(sizes) <= 80  # small sizes collide after rounding
    assert sizes == sorted(sizes)


def test_sizes_are_configurable_and_checked():
    assert tensor_sizes(1000, 10**6, 4) == [1000, 10000, 100000, 1000000]
    # rounded, not truncated: a custom range ends exactly where asked
    assert all(tensor_sizes(1, top, count)[-1] == top for top in (4096, 1000, 777_777) for count in (5, 17, 80))
    assert tensor_sizes(7, 7, 3) == [7] and tensor_sizes(1, 10**8, 80)[:4] == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        tensor_sizes(10, 1, 5)


@pytest.mark.parametrize("world_size, factor", [(1, 0.0), (2, 1.0), (4, 1.5), (8, 1.75)])
def test_bus_bandwidth_is_the_nccl_tests_formula(world_size, factor):
    assert bus_bandwidth(10.0, world_size) == pytest.approx(10.0 * factor)


def test_unavailable_backends_say_why():
    reasons = backend_availability()
    assert set(reasons) == {"gloo", "nccl", "mpi"}
    assert reasons["gloo"] is None  # this torch build has gloo
    assert reasons["mpi"] == (None if torch.distributed.is_mpi_available()
                              else "this torch build was not compiled with MPI")
    if not torch.cuda.is_available():
        assert "CUDA" in reasons["nccl"] or "NCCL" in reasons["nccl"]
