"""Checkpoints: round trip, atomic writes, weights_only loading, and clear errors for bad files."""
import os
import pickle

import pytest
import torch

from diffusion_lib.backbones import UNet
from diffusion_lib.checkpoints import (CheckpointError, load_checkpoint, load_model, load_weights_into,
                                       save_checkpoint)
from diffusion_lib.training import Trainer

from _tiny import one_thread, synthetic_mnist, tiny_config  # noqa: F401 (one_thread is autouse)


@pytest.fixture(scope="module")
def trainer():
    """A tiny U-Net after three training steps (so the EMA weights differ from the raw ones)."""
    tr = Trainer(tiny_config(ema_decay=0.999))
    images, _ = synthetic_mnist(12)
    for i in range(3):
        tr.train_step(images[4 * i:4 * (i + 1)])
    return tr


@pytest.fixture(scope="module")
def probe():
    g = torch.Generator().manual_seed(5)
    return torch.randn((2, 1, 28, 28), generator=g), torch.tensor([10, 700])


@pytest.fixture()
def saved(trainer, tmp_path):
    return trainer.save(tmp_path / "run" / "last.pt")


def outputs(model, probe):
    with torch.no_grad():
        return model.eval()(*probe)


def test_round_trip_gives_identical_outputs(trainer, saved, probe):
    raw, ema = outputs(trainer.model, probe), outputs(trainer.ema.module, probe)
    assert not torch.allclose(raw, ema, atol=1e-6)         # the two sets of weights are distinguishable
    assert torch.equal(outputs(load_model(saved, ema=False), probe), raw)
    assert torch.equal(outputs(load_model(saved), probe), ema)
    assert not load_model(saved).training
    checkpoint = load_checkpoint(saved)
    assert checkpoint["format"] == "diffusion_lib/1" and checkpoint["step"] == 3
    assert checkpoint["arch"] == {"name": "unet", "kwargs": {"base": 8, "mults": [1, 2, 2], "num_classes": None}}
    assert checkpoint["schedule"] == {"name": "linear", "T": 1000}


def test_load_weights_into_a_model_of_the_same_architecture(trainer, saved, probe):
    model = load_weights_into(UNet(base=8), load_checkpoint(saved), ema=False)
    assert torch.equal(outputs(model, probe), outputs(trainer.model, probe))


def test_checkpoint_without_ema(trainer, tmp_path, probe):
    path = save_checkpoint({"arch": trainer.model.arch, "schedule": {"name": "linear", "T": 1000},
                            "model": trainer.model.state_dict()}, tmp_path / "raw.pt")
    assert torch.equal(outputs(load_model(path), probe), outputs(trainer.model, probe))
    with pytest.raises(CheckpointError, match="no EMA weights"):
        load_weights_into(UNet(base=8), load_checkpoint(path), ema=True)


def test_save_replaces_and_leaves_no_temp_file(trainer, saved):
    first = saved.read_bytes()
    trainer.save(saved)
    assert sorted(os.listdir(saved.parent)) == ["last.pt"]
    assert load_checkpoint(saved)["step"] == 3 and len(saved.read_bytes()) == len(first)


def test_a_failing_save_leaves_the_previous_file_intact(saved, monkeypatch):
    before = saved.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"arch": {"name": "unet", "kwargs": {}}, "step": 99}, saved)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert sorted(os.listdir(saved.parent)) == ["last.pt"]
    assert load_checkpoint(saved)["step"] == 3


def test_load_uses_weights_only(saved, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(saved)
    assert calls and all(c.get("weights_only") is True for c in calls)


RAN = []


def _payload():
    RAN.append("the pickle ran code")
    return "pwned"


class Payload:
    def __reduce__(self):
        return (_payload, ())


def test_arbitrary_python_objects_are_refused(tmp_path):
    """A checkpoint holding an arbitrary object: weights_only=True refuses it, and its code never runs."""
    path = tmp_path / "evil.pt"
    torch.save({"format": "diffusion_lib/1", "arch": {"name": "unet", "kwargs": {}}, "extra": Payload()}, path)
    assert pickle.loads(pickle.dumps(Payload())) == "pwned" and RAN == ["the pickle ran code"]   # a real payload
    RAN.clear()
    with pytest.raises(CheckpointError, match="corrupt or not a diffusion_lib checkpoint"):
        load_checkpoint(path)
    assert RAN == []


def test_another_architecture_names_both(saved):
    checkpoint = load_checkpoint(saved)
    with pytest.raises(CheckpointError, match="architecture mismatch") as info:
        load_weights_into(UNet(base=16), checkpoint)
    message = str(info.value)
    assert "'base': 8" in message and "'base': 16" in message


def test_corrupt_files(saved, tmp_path):
    g = torch.Generator().manual_seed(0)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=g, dtype=torch.uint8).tolist()))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for path in (noise, truncated, empty):
        with pytest.raises(CheckpointError, match="corrupt") as info:
            load_checkpoint(path)
        assert str(path) in str(info.value)
        with pytest.raises(CheckpointError, match="corrupt"):
            load_model(path)


def test_a_torch_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a diffusion_lib checkpoint"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at") as info:
        load_checkpoint(tmp_path / "nope.pt")
    assert str(tmp_path / "nope.pt") in str(info.value)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.pt")


# ----------------------------------------------------------------------------- digest (issue 22)

def flip_a_tensor_byte(src, dst):
    """A copy of src with one bit flipped in the middle of its largest tensor's stored bytes (a zip member
    archive/data/N; a flip in the zip's padding would change nothing that is read)."""
    import io
    import struct
    import zipfile
    raw = bytearray(src.read_bytes())
    big = max((i for i in zipfile.ZipFile(io.BytesIO(bytes(raw))).infolist() if "/data/" in i.filename),
              key=lambda i: i.compress_size)
    name_len, extra_len = struct.unpack("<HH", raw[big.header_offset + 26:big.header_offset + 30])
    raw[big.header_offset + 30 + name_len + extra_len + big.compress_size // 2] ^= 0x10
    dst.write_bytes(bytes(raw))


def test_a_flipped_byte_is_found_by_the_digest(saved, tmp_path):
    assert load_checkpoint(saved)["step"] == 3                       # the digest of an intact file matches
    flip_a_tensor_byte(saved, tmp_path / "flipped.pt")
    raw = torch.load(tmp_path / "flipped.pt", weights_only=True)      # torch alone reads it without a word
    assert raw["digest"].startswith("sha256:")
    with pytest.raises(CheckpointError, match=r"flipped.pt is damaged: its contents no longer match the digest"):
        load_checkpoint(tmp_path / "flipped.pt")
    with pytest.raises(CheckpointError, match="is damaged"):
        load_model(tmp_path / "flipped.pt")


def test_a_file_without_a_digest_still_loads(saved, tmp_path, probe):
    record = torch.load(saved, weights_only=True)
    del record["digest"]                                              # as files written before digests
    torch.save(record, tmp_path / "old.pt")
    assert "digest" not in load_checkpoint(tmp_path / "old.pt")
    assert torch.equal(outputs(load_model(tmp_path / "old.pt"), probe), outputs(load_model(saved), probe))


def test_the_digest_covers_every_tensor_and_value():
    from diffusion_lib.checkpoints import payload_digest
    payload = {"a": torch.zeros(3), "b": {"c": [1, 2.5, "x"]}}
    same = {"b": {"c": [1, 2.5, "x"]}, "a": torch.zeros(3)}          # key order does not matter
    assert payload_digest(payload) == payload_digest(same)
    for changed in ({"a": torch.tensor([0.0, 0.0, 1e-30]), "b": payload["b"]}, {"a": torch.zeros(3, dtype=torch.float64), "b": payload["b"]},
                    {"a": torch.zeros(3), "b": {"c": [1, 2.5, "y"]}}, {"a": torch.zeros(1, 3), "b": payload["b"]}):
        assert payload_digest(changed) != payload_digest(payload)


# ----------------------------------------------------------------------------- a model that knows what it is

def test_a_loaded_model_carries_its_objective_and_schedule_read_once(saved, monkeypatch):
    import diffusion_lib.checkpoints as checkpoints
    reads = []
    real = torch.load
    monkeypatch.setattr(checkpoints.torch, "load", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    model = load_model(saved)
    assert len(reads) == 1
    assert model.objective == "eps" and model.output == "eps" and model.weights == "ema"
    assert (model.schedule.name, model.schedule.T) == ("linear", 1000)


def test_weights_that_do_not_fit_the_recorded_architecture_name_the_file(saved, tmp_path):
    record = load_checkpoint(saved)
    record["ema"] = {k: v for k, v in list(record["ema"].items())[:-1]}
    save_checkpoint(record, tmp_path / "misfit.pt")
    with pytest.raises(CheckpointError, match=r"misfit.pt: its EMA weights do not fit the architecture it records"):
        load_model(tmp_path / "misfit.pt")


def test_the_path_a_checkpoint_was_read_from_is_never_saved(saved, tmp_path):
    record = load_checkpoint(saved)
    assert record["path"] == str(saved)
    save_checkpoint(record, tmp_path / "copy.pt")
    assert "path" not in torch.load(tmp_path / "copy.pt", weights_only=True)


def test_a_full_disk_names_the_file_and_leaves_the_previous_checkpoint(saved, monkeypatch):
    """Issue 22: disk full or file too large came without the file's name; the CLI maps it to a fix."""
    import errno
    import diffusion_lib.checkpoints as checkpoints
    from diffusion_lib.cli import _message
    before = saved.read_bytes()

    def full(obj, f, *args, **kwargs):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")       # what a write raises: no file name
    monkeypatch.setattr(checkpoints.torch, "save", full)
    with pytest.raises(OSError) as info:
        save_checkpoint({"arch": {}}, saved)
    assert info.value.filename == str(saved) and info.value.errno == errno.ENOSPC
    assert _message(info.value) == (f"No space left on device: {saved}; free disk space, or write to another disk "
                                    "(nothing was left half-written)")
    assert saved.read_bytes() == before and sorted(p.name for p in saved.parent.iterdir()) == ["last.pt"]
