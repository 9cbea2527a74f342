"""`python -m diffusion_lib train` and `sample`, called in-process through diffusion_lib.cli.main."""
import matplotlib.image
import pytest

from diffusion_lib.checkpoints import load_checkpoint
from diffusion_lib.cli import main
from diffusion_lib.data import data_root

from _tiny import one_thread  # noqa: F401 (one_thread is autouse)


def need_mnist():
    if not (data_root() / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"MNIST is not in {data_root()} (set DIFFUSION_LIB_DATA)")


TINY = ["--base", "8", "--batch-size", "8", "--limit", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-step run of a U-Net with 8 base channels on 64 MNIST images."""
    need_mnist()
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TINY, "--steps", "3", "--out", str(out)]) == 0
    return out / "last.pt"


def test_train_writes_a_checkpoint(trained, capsys):
    checkpoint = load_checkpoint(trained)
    assert checkpoint["step"] == 3 and len(checkpoint["history"]["loss"]) == 3
    assert checkpoint["arch"]["kwargs"]["base"] == 8
    assert checkpoint["config"]["batch_size"] == 8


def test_sample_writes_a_png_grid(trained, tmp_path, capsys):
    out = tmp_path / "grid" / "samples.png"
    assert main(["sample", "--checkpoint", str(trained), "--steps", "2", "--n", "4", "--device", "cpu",
                 "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    picture = matplotlib.image.imread(out)
    assert picture.shape[:2] == (2 * 28 + 2, 2 * 28 + 2)          # a 2 x 2 grid of 28 x 28 with a 2-pixel gap
    assert "wrote 4 samples" in capsys.readouterr().out


def test_sample_in_bf16_writes_a_grid_close_to_fp32(trained, tmp_path):
    common = ["sample", "--checkpoint", str(trained), "--steps", "2", "--n", "4", "--device", "cpu", "--threads", "1"]
    assert main([*common, "--out", str(tmp_path / "fp32.png")]) == 0
    assert main([*common, "--precision", "bf16", "--out", str(tmp_path / "bf16.png")]) == 0
    fp32, bf16 = (matplotlib.image.imread(tmp_path / f"{p}.png") for p in ("fp32", "bf16"))
    assert fp32.shape == bf16.shape
    assert abs(fp32.astype(float) - bf16.astype(float)).mean() < 0.05   # same noise, same picture up to rounding


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_that_would_emulate_it_is_warned_about(trained, tmp_path, capsys, monkeypatch, native):
    import diffusion_lib.device as device_module
    monkeypatch.setattr(device_module, "_cpu_has_bf16", lambda: native)
    common = ["--steps", "1", "--n", "2", "--device", "cpu", "--threads", "1"]
    assert main(["sample", "--checkpoint", str(trained), *common, "--precision", "bf16",
                 "--out", str(tmp_path / "bf16.png")]) == 0
    err = capsys.readouterr().err
    assert ("no AVX512-BF16 or AMX" in err and "use --precision fp32" in err) is (not native)
    assert main(["sample", "--checkpoint", str(trained), *common, "--out", str(tmp_path / "fp32.png")]) == 0
    assert "AVX512" not in capsys.readouterr().err            # fp32 is never warned about


def test_train_resumes_in_the_same_folder(trained, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(trained.read_bytes())
    assert main(["train", *TINY, "--steps", "5", "--out", str(out)]) == 0
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["step"] == 5
    assert checkpoint["history"]["loss"][:3] == load_checkpoint(trained)["history"]["loss"]
    assert "to step 5" in capsys.readouterr().out


def test_conditional_ddpm_round_trip(tmp_path):
    need_mnist()
    out = tmp_path / "cond"
    assert main(["train", *TINY, "--conditional", "--T", "20", "--steps", "2", "--out", str(out)]) == 0
    assert load_checkpoint(out / "last.pt")["arch"]["kwargs"]["num_classes"] == 10
    png = tmp_path / "sevens.png"
    assert main(["sample", "--checkpoint", str(out / "last.pt"), "--sampler", "ddpm", "--label", "7", "--w", "2",
                 "--n", "3", "--nrow", "3", "--device", "cpu", "--out", str(png)]) == 0
    assert matplotlib.image.imread(png).shape[:2] == (28, 3 * 28 + 2 * 2)


def test_sample_from_a_missing_checkpoint(tmp_path, capsys):
    missing = tmp_path / "nope" / "last.pt"
    code = main(["sample", "--checkpoint", str(missing), "--out", str(tmp_path / "x.png")])
    assert code != 0
    err = capsys.readouterr().err
    assert err.startswith("error: no checkpoint at") and str(missing) in err
    assert not (tmp_path / "x.png").exists()


def test_label_on_an_unconditional_model(trained, tmp_path, capsys):
    code = main(["sample", "--checkpoint", str(trained), "--steps", "1", "--n", "1", "--label", "3", "--device", "cpu",
                 "--out", str(tmp_path / "x.png")])
    assert code == 2 and "class-conditional" in capsys.readouterr().err


def test_corrupt_checkpoint_and_bad_eta(trained, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["sample", "--checkpoint", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(trained), "--eta", "2", "--steps", "2", "--n", "1", "--device", "cpu",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "argument --eta: must be in [0, 1], got 2" in capsys.readouterr().err


def test_usage_errors_are_one_line_with_exit_code_2(capsys):
    assert main(["sample"]) == 2                           # neither --checkpoint nor --pretrained
    err = capsys.readouterr().err
    assert err.startswith("error: one of the arguments --checkpoint --pretrained is required") and err.count("\n") == 1
    assert main(["train", "--backbone", "resnet", "--out", "x"]) == 2
    assert "invalid choice: 'resnet'" in capsys.readouterr().err
