"""Checkpoints: only tensors and plain values are loaded, and a damaged newest epoch falls back to
the one before, the same way on every rank."""

import json
import os
import struct

import pytest
import torch

from tasks.errors import UserError
from tasks.runtime import checkpoint

pytestmark = pytest.mark.unit

HASH = "abc123"


def save_epoch(directory, epoch, world_size=2):
    for rank in range(world_size):
        checkpoint.save_rank(directory, epoch, rank, {"model": {"w": torch.full((3,), float(epoch))},
                                                      "state": {"epochs_done": epoch, "note": "x"}})
    checkpoint.publish(directory, epoch, HASH)
    for rank in range(world_size):
        checkpoint.prune(directory, rank)


def test_a_run_resumes_from_the_newest_epoch_and_keeps_the_two_newest(tmp_path):
    for epoch in (1, 2, 3):
        save_epoch(tmp_path, epoch)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [
        "epoch-0002-rank0.pt", "epoch-0002-rank1.pt", "epoch-0003-rank0.pt", "epoch-0003-rank1.pt"]
    payload, skipped = checkpoint.load_latest(tmp_path, 1, HASH, world_size=2)
    assert payload["state"]["epochs_done"] == 3 and skipped == []
    assert torch.equal(payload["model"]["w"], torch.full((3,), 3.0))


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_a_damaged_newest_epoch_falls_back_to_the_previous_one_on_every_rank(tmp_path, damage):
    save_epoch(tmp_path, 1)
    save_epoch(tmp_path, 2)
    broken = tmp_path / "epoch-0002-rank1.pt"
    data = broken.read_bytes()
    if damage == "truncate":
        broken.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        at = data.index(struct.pack("<3f", 2.0, 2.0, 2.0))  # inside the tensor's bytes: the zip's CRC catches it
        broken.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:])
    else:
        broken.unlink()
    for rank in (0, 1):  # rank 0's own file is intact, and still it goes back with rank 1
        payload, skipped = checkpoint.load_latest(tmp_path, rank, HASH, world_size=2)
        assert payload["state"]["epochs_done"] == 1
        assert len(skipped) == 1 and skipped[0].startswith("epoch 2: epoch-0002-rank1.pt")


def test_when_no_kept_epoch_is_whole_the_error_names_the_files_and_the_way_out(tmp_path):
    save_epoch(tmp_path, 1)
    save_epoch(tmp_path, 2)
    (tmp_path / "epoch-0002-rank0.pt").write_bytes(b"")
    (tmp_path / "epoch-0001-rank1.pt").unlink()
    with pytest.raises(UserError) as error:
        checkpoint.load_latest(tmp_path, 0, HASH, world_size=2)
    message = str(error.value)
    assert "epoch-0002-rank0.pt is truncated" in message and "epoch-0001-rank1.pt is missing" in message
    assert f"delete {tmp_path}" in message


def test_an_unreadable_marker_is_a_clear_error(tmp_path):
    save_epoch(tmp_path, 1)
    (tmp_path / "latest.json").write_text("{\"epoch\": ")
    with pytest.raises(UserError, match=r"latest.json is unreadable .*delete"):
        checkpoint.load_latest(tmp_path, 0, HASH, world_size=2)


class Planted:
    """What an attacker with write access to the results volume would leave: unpickling it runs code."""

    def __reduce__(self):
        return (os.system, ("touch planted-ran",))


def test_a_crafted_pickle_is_refused_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_epoch(tmp_path, 1, world_size=1)
    torch.save({"model": {}, "state": Planted()}, tmp_path / "epoch-0001-rank0.pt")  # a valid zip, a hostile pickle
    with pytest.raises(UserError, match=r"refusing to load .*epoch-0001-rank0.pt: it holds objects other than"):
        checkpoint.load_latest(tmp_path, 0, HASH, world_size=1)
    assert not (tmp_path / "planted-ran").exists()
    torch.load(tmp_path / "epoch-0001-rank0.pt", weights_only=False)  # the control: the old way runs it
    assert (tmp_path / "planted-ran").exists()


def test_a_failed_write_leaves_the_previous_checkpoint_valid_and_no_partial_file(tmp_path, monkeypatch):
    save_epoch(tmp_path, 1, world_size=1)

    def disk_full(payload, path):
        open(path, "wb").write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save_rank(tmp_path, 2, 0, {"model": {}})
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "epoch-0002-rank0.pt").exists()
    assert json.loads((tmp_path / "latest.json").read_text())["epoch"] == 1
    payload, _ = checkpoint.load_latest(tmp_path, 0, HASH, world_size=1)
    assert payload["state"]["epochs_done"] == 1
