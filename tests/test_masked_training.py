"""Token models of notebook 14: networks, data, checkpoints (round trip, exact resume, kinds), the command line's
train-tokens and sample-tokens, and their bad inputs (exit 2, one line, nothing written). Tiny data the tests write."""
import gzip

import pytest
import torch

from diffusion_lib.checkpoints import CheckpointError, load_checkpoint, load_model
from diffusion_lib.cli import main
from diffusion_lib.data import data_root
from diffusion_lib.masked_training import (TokenTrainConfig, export_token_model, load_token_model, train_tokens)
from diffusion_lib.token_networks import CharTransformer, TokenUNet
from diffusion_lib.tokens import (characters, decode_names, dequantise, encode_names, load_names, quantise,
                                  split_names)

from _tiny import one_thread  # noqa: F401 (one_thread is autouse)

NAMES = ["ann", "bob", "cleo", "dan", "eve", "fay", "gus", "hal", "ida", "jon", "kim", "lou", "max", "ned", "oona",
         "pat", "quin", "rae", "sam", "tom"]
TINY_NET = '{"width": 16, "depth": 1, "heads": 2}'


@pytest.fixture
def names_file(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(NAMES) + "\n")
    return path


# ----------------------------------------------------------------------------- data

def test_names_encode_decode_round_trip(tmp_path):
    tokens = encode_names(["ann", "cleopatra"], length=12)
    assert tokens.shape == (2, 12) and tokens[0, 3:].eq(26).all()
    assert decode_names(tokens) == ["ann", "cleopatra"]
    assert characters(tokens).tolist() == [4, 10]                # letters and one end mark
    with pytest.raises(ValueError, match="at most 11"):
        encode_names(["abcdefghijkl"])
    for bad in ("Ann", "o'neil", "ann "):                        # capitals and other characters, named with the fix
        with pytest.raises(ValueError, match=f"lower-case letters a-z only, got {bad!r}; pass name.lower()"):
            encode_names(["bob", bad])
    gz = tmp_path / "n.txt.gz"
    with gzip.open(gz, "wt") as f:
        f.write("ann\nbob\n")
    assert load_names(gz) == ["ann", "bob"]
    (tmp_path / "bad.txt").write_text("Ann\n")
    with pytest.raises(ValueError, match="a-z"):
        load_names(tmp_path / "bad.txt")
    train, held = split_names(NAMES, 0.1)
    assert len(held) == 2 and not set(train) & set(held) and sorted(train + held) == sorted(NAMES)


def test_quantise_and_dequantise():
    images = torch.tensor([-1.0, -0.4, 0.2, 0.95]).view(1, 1, 2, 2)
    tokens = quantise(images, 4)                                  # grey levels -1, -1/3, 1/3, 1
    assert tokens.tolist() == [[[0, 1], [2, 3]]]
    assert torch.allclose(dequantise(tokens, 4), torch.tensor([-1, -1 / 3, 1 / 3, 1.0]).view(1, 1, 2, 2))
    assert quantise(images, 2).tolist() == [[[0, 0], [1, 1]]]


def test_networks_map_tokens_to_logits_and_check_inputs():
    net = TokenUNet(vocab_size=4, embed_dim=4, base=8)
    x = torch.randint(0, 5, (2, 28, 28))
    assert net(x).shape == (2, 28, 28, 4)
    text = CharTransformer(vocab_size=27, length=12, width=16, depth=1, heads=2)
    assert text(torch.randint(0, 28, (3, 12))).shape == (3, 12, 27)
    with pytest.raises(ValueError, match=r"\[0, 27\]"):
        text(torch.full((1, 12), 28))
    with pytest.raises(ValueError, match="shape"):
        text(torch.zeros(1, 11, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        text(torch.zeros(1, 12))


def test_causal_network_ignores_later_positions():
    torch.manual_seed(0)
    net = CharTransformer(vocab_size=5, length=6, width=16, depth=2, heads=2, causal=True).eval()
    a = torch.tensor([[5, 1, 2, 3, 4, 0]])
    b = a.clone()
    b[0, 4:] = torch.tensor([2, 2])
    assert torch.allclose(net(a)[0, :4], net(b)[0, :4], atol=1e-6)
    assert not torch.allclose(net(a)[0, 4:], net(b)[0, 4:], atol=1e-6)


# ----------------------------------------------------------------------------- checkpoints

def tiny_config(**overrides):
    settings = dict(kind="masked", network="char_transformer", network_kwargs={"width": 16, "depth": 1, "heads": 2},
                    data="surnames", steps=4, batch_size=4, checkpoint_every=2, seed=0)
    settings.update(overrides)
    return TokenTrainConfig(**settings)


@pytest.mark.parametrize("kind", ["masked", "autoregressive"])
def test_checkpoint_round_trip_and_export(tmp_path, kind):
    data = encode_names(NAMES)
    trainer, ema = train_tokens(tiny_config(kind=kind), data, out_dir=tmp_path, progress=False)
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["kind"] == kind and checkpoint["data"] == {"name": "surnames", "length": 12}
    loaded = load_token_model(tmp_path / "last.pt")
    assert loaded.causal == (kind == "autoregressive")
    x = data[:3]
    assert torch.allclose(loaded(x), ema(x))
    exported = export_token_model(tmp_path / "last.pt", tmp_path / "small.pt")
    small = load_checkpoint(exported)
    assert "optimizer" not in small and "model" not in small and small["kind"] == kind
    assert torch.allclose(load_token_model(exported)(x), ema(x))
    with pytest.raises(CheckpointError, match="load_token_model"):
        load_model(exported)


def test_resume_continues_exactly(tmp_path):
    data = encode_names(NAMES)
    straight, _ = train_tokens(tiny_config(steps=4), data, out_dir=tmp_path / "a", progress=False)
    train_tokens(tiny_config(steps=2), data, out_dir=tmp_path / "b", progress=False)
    resumed, _ = train_tokens(tiny_config(steps=4), data, out_dir=tmp_path / "b", progress=False)
    assert resumed.history["loss"] == straight.history["loss"]
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(CheckpointError, match="other settings"):
        train_tokens(tiny_config(steps=6, lr=5e-4), data, out_dir=tmp_path / "b", progress=False)


def test_config_refuses_mismatched_choices():
    with pytest.raises(ValueError, match="kind"):
        tiny_config(kind="gaussian")
    with pytest.raises(ValueError, match="token_unet"):
        tiny_config(data="mnist")
    with pytest.raises(ValueError, match="autoregressive baseline"):
        tiny_config(kind="autoregressive", network="token_unet", data="mnist")


# ----------------------------------------------------------------------------- the command line

def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("kind,sampler", [("masked", "ancestral"), ("masked", "confidence"),
                                          ("masked", "fixed-order"), ("autoregressive", "autoregressive")])
def test_cli_trains_and_samples_names(tmp_path, names_file, capsys, kind, sampler):
    out = tmp_path / "run"
    code, printed, _ = run(["train-tokens", "--data", "surnames", "--names", str(names_file), "--kind", kind,
                            "--network-kwargs", TINY_NET, "--steps", "3", "--batch-size", "4", "--out", str(out)],
                           capsys)
    assert code == 0 and "step 3" in printed
    assert load_checkpoint(out / "last.pt")["kind"] == kind
    text = tmp_path / "names.txt"
    steps = ["--steps", "3"] if sampler in ("ancestral", "confidence") else []
    code, printed, _ = run(["sample-tokens", "--checkpoint", str(out / "last.pt"), "--sampler", sampler, *steps,
                            "--n", "5", "--out", str(text)], capsys)
    assert code == 0, printed
    lines = text.read_text().splitlines()
    assert len(lines) == 5 and all(set(line) <= set("abcdefghijklmnopqrstuvwxyz") for line in lines)


def need_mnist():
    if not (data_root() / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"MNIST is not in {data_root()} (set DIFFUSION_LIB_DATA)")


def test_cli_trains_and_samples_digits(tmp_path, capsys):
    need_mnist()
    out = tmp_path / "digits"
    code, _, err = run(["train-tokens", "--data", "mnist", "--levels", "2", "--network-kwargs",
                        '{"base": 8, "embed_dim": 4}', "--steps", "2", "--batch-size", "4", "--limit", "16",
                        "--out", str(out)], capsys)
    assert code == 0, err
    png = tmp_path / "d.png"
    code, printed, _ = run(["sample-tokens", "--checkpoint", str(out / "last.pt"), "--steps", "2", "--n", "4",
                            "--out", str(png)], capsys)
    assert code == 0 and png.exists() and "2 network evaluations" in printed


@pytest.fixture
def names_checkpoint(tmp_path, names_file, capsys):
    out = tmp_path / "trained"
    assert main(["train-tokens", "--data", "surnames", "--names", str(names_file), "--network-kwargs", TINY_NET,
                 "--steps", "2", "--batch-size", "4", "--out", str(out)]) == 0
    capsys.readouterr()
    return out / "last.pt"


def bad_inputs(tmp_path, names_file, checkpoint):
    n, c = str(names_file), str(checkpoint)
    train = ["train-tokens", "--data", "surnames", "--names", n, "--network-kwargs", TINY_NET, "--steps", "2"]
    return [
        (train + ["--levels", "4", "--out", str(tmp_path / "o1")], "--levels applies to --data mnist"),
        (train + ["--kind", "autoregressive", "--weighting", "none", "--out", str(tmp_path / "o2")], "--kind masked"),
        (["train-tokens", "--data", "mnist", "--kind", "autoregressive", "--out", str(tmp_path / "o3")],
         "--data surnames"),
        (train + ["--network-kwargs", "{width: 3}", "--out", str(tmp_path / "o4")], "not valid JSON"),
        (train + ["--network-kwargs", "[96]", "--out", str(tmp_path / "o4b")],
         "--network-kwargs must be a JSON object of argument names to values, got [96]; e.g. --network-kwargs"),
        (train + ["--network-kwargs", '{"causal": true}', "--out", str(tmp_path / "o5")], "give no causal"),
        (train + ["--network-kwargs", '{"width": 15, "heads": 2}', "--out", str(tmp_path / "o6")], "multiple of heads"),
        (train + ["--names", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o7")], "is not a file"),
        (train + ["--lr", "-1", "--out", str(tmp_path / "o8")], "--lr"),
        (train + ["--limit", "1000", "--out", str(tmp_path / "o9")], "--limit"),
        (train + ["--lr", "5e-4", "--out", str(checkpoint.parent)], "other settings"),
        (["sample-tokens", "--checkpoint", c, "--out", str(tmp_path / "s1.png")], "must end in .txt"),
        (["sample-tokens", "--checkpoint", c, "--sampler", "autoregressive", "--out", str(tmp_path / "s2.txt")],
         "does not apply"),
        (["sample-tokens", "--checkpoint", c, "--sampler", "fixed-order", "--steps", "3",
          "--out", str(tmp_path / "s3.txt")], "--steps does not apply"),
        (["sample-tokens", "--checkpoint", c, "--steps", "0", "--out", str(tmp_path / "s4.txt")], "--steps"),
        (["sample-tokens", "--checkpoint", c, "--sampler", "ancestral", "--choice-temperature", "1",
          "--out", str(tmp_path / "s7.txt")], "--choice-temperature applies"),
        (["sample-tokens", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "s5.txt")],
         "no checkpoint"),
        (["sample", "--checkpoint", c, "--out", str(tmp_path / "s6.png")], "sample-tokens"),
    ]


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, names_file, names_checkpoint, capsys):
    before_checkpoint = names_checkpoint.read_bytes()
    for argv, words in bad_inputs(tmp_path, names_file, names_checkpoint):
        listing = sorted(p.name for p in tmp_path.iterdir())
        code, printed, err = run(argv, capsys)
        assert code == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (argv, err)
        assert "Traceback" not in err and printed == ""
        assert sorted(p.name for p in tmp_path.iterdir()) == listing, argv     # nothing written
    assert names_checkpoint.read_bytes() == before_checkpoint


def test_shipped_token_models_load_and_have_cards():
    from diffusion_lib.pretrained import TOKEN_PRETRAINED, WEIGHTS_DIR, load_pretrained_tokens

    for name, entry in TOKEN_PRETRAINED.items():
        path = WEIGHTS_DIR / entry.file
        if not path.exists():
            pytest.skip(f"{entry.file} is not shipped")
        checkpoint = load_checkpoint(path)
        assert checkpoint["kind"] == ("autoregressive" if name.startswith("ar_") else "masked")
        assert "optimizer" not in checkpoint and (WEIGHTS_DIR / f"{name}.md").exists()
        net = load_pretrained_tokens(name)
        x = torch.zeros((2, *net.token_shape), dtype=torch.long)
        assert net(x).shape == (2, *net.token_shape, net.vocab_size)
    with pytest.raises(ValueError, match="not a shipped token model"):
        load_pretrained_tokens("unet")
