"""The library on a GPU, proved without one: samplers, trainer, sweeps and metrics under the CUDA-rules emulation
(tests/cuda_emulation.py). Each function must run with its inputs on "cuda", return its result there (or where its
docstring says), draw seeded noise on the CPU (the same pictures as on a CPU), and make no needless host<->device
copy or read per step."""
import copy
import math
import importlib.util
from pathlib import Path

import pytest
import torch

import diffusion_lib as dl
from diffusion_lib import samplers, toy
from diffusion_lib.forward import q_sample
from diffusion_lib.measure import experiments, inspection, metrics, sweeps
from diffusion_lib.schedules import extract, make_schedule
from diffusion_lib.training import TrainConfig, Trainer, drop_labels, train

from _tiny import one_thread, synthetic_mnist  # noqa: F401 (one_thread is autouse)
from cuda_emulation import EmulatedCuda, is_emulated_cuda

REPO = Path(__file__).resolve().parents[1]
SCHEDULE = make_schedule("linear", 50)          # a short chain: the rules, not the pictures, are tested here


@pytest.fixture
def cuda():
    with EmulatedCuda() as mode:
        yield mode


def unet(seed=0, **kwargs):
    torch.manual_seed(seed)
    net = dl.UNet(base=8, **kwargs).eval()
    net.T = SCHEDULE.T
    return net


def noise(n=2, seed=0):
    return torch.randn((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed))


def on_cuda(x):
    return is_emulated_cuda(x) and x.device.type == "cuda"


# ----------------------------------------------------------------------------- the functions the issue lists

def test_extract_and_q_sample_with_cpu_timesteps_for_cuda_images(cuda):
    x0 = noise().to("cuda")
    t = torch.tensor([3, 40])                                             # on the CPU
    x_t = q_sample(x0, t, SCHEDULE, noise(seed=1).to("cuda"))
    assert on_cuda(x_t)
    assert on_cuda(extract(SCHEDULE.alpha_bar, t.to("cuda"), x0.shape))
    expected = q_sample(x0.cpu(), t, SCHEDULE, noise(seed=1))
    assert torch.allclose(x_t.cpu(), expected)


def test_sample_noise_and_the_samplers_draw_seeded_noise_on_the_cpu(cuda):
    x = samplers.sample_noise(3, generator=torch.Generator().manual_seed(0), device="cuda")
    assert on_cuda(x) and torch.equal(x.cpu(), noise(3))                  # the CPU's draw, moved
    z = samplers._randn(x, torch.Generator().manual_seed(5))
    assert on_cuda(z) and torch.equal(z.cpu(), torch.randn(x.shape, generator=torch.Generator().manual_seed(5)))
    z = samplers._randn(x, torch.Generator(device="cuda").manual_seed(5))  # a CUDA generator: drawn there, no error
    assert on_cuda(z)


def test_a_gpu_chain_shows_the_pictures_of_a_cpu_chain():
    """Same seed, same samples: DDPM and DDIM with eta = 1 (noise at every step) on cuda equal the CPU's."""
    model = unet()
    x_T = noise(2)
    expected = [samplers.final(samplers.ddpm_sample_progressive(model, x_T, SCHEDULE,
                                                               generator=torch.Generator().manual_seed(1))),
                sweeps.ddim_images(model, x_T, SCHEDULE, 10, eta=1.0, seed=3)]
    with EmulatedCuda():
        gpu_model = copy.deepcopy(model).to("cuda")
        got = [samplers.final(samplers.ddpm_sample_progressive(gpu_model, x_T.to("cuda"), SCHEDULE,
                                                              generator=torch.Generator().manual_seed(1))),
               sweeps.ddim_images(gpu_model, x_T.to("cuda"), SCHEDULE, 10, eta=1.0, seed=3)]
        assert all(on_cuda(x) for x in got)
        got = [x.cpu() for x in got]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, expected))


def test_ddim_encode_then_decode_on_cuda_like_the_worked_solution(cuda):
    spec = importlib.util.spec_from_file_location("solution_07", REPO / "solutions" / "07_ddim.py")
    solution = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(solution)
    model = unet().to("cuda")
    digits = noise(2).clamp(-1, 1).to("cuda")
    result = solution.inversion_experiment(model, SCHEDULE, digits, [2, 5])
    assert len(result["errors"]) == 2
    latents = sweeps.ddim_encode(model, digits, SCHEDULE, 5).sample        # recorded on the CPU, as documented
    assert latents.device.type == "cpu"
    assert on_cuda(sweeps.ddim_images(model, latents, SCHEDULE, 5))         # decoded where the network is


def test_nearest_neighbours_on_cuda(cuda):
    queries, references = noise(3).to("cuda"), noise(5, seed=1).to("cuda")
    distances, index = metrics.nearest_neighbours(queries, references, batch_size=2)
    assert on_cuda(distances) and on_cuda(index)
    d = torch.cdist(queries.cpu().flatten(1).double(), references.cpu().flatten(1).double())
    assert torch.allclose(distances.cpu(), d.min(1).values) and torch.equal(index.cpu(), d.argmin(1))


def test_eps_error_amplification_on_cuda(cuda):
    t = torch.tensor([0, 10, 49], device="cuda")
    out = experiments.eps_error_amplification(t, SCHEDULE)
    assert on_cuda(out)
    ab = SCHEDULE.alpha_bar[[0, 10, 49]]
    assert torch.allclose(out.cpu(), ((1 - ab.double()) / ab.double()).sqrt().float(), rtol=1e-3)   # float32 1 - ab


def test_toy_eps_errors_on_cuda(cuda):
    mixture = toy.ring_mixture()
    torch.manual_seed(0)
    model = dl.PointMLP(width=16, depth=1).to("cuda").eval()
    model.T = SCHEDULE.T
    x0 = toy.mixture_sample(mixture, 32, torch.Generator().manual_seed(0)).to("cuda")
    rows = inspection.toy_eps_errors(model, mixture, x0, SCHEDULE, [5, 40])
    assert [r["t"] for r in rows] == [5, 40] and all(r["loss"] >= 0 for r in rows)


def test_drop_labels_with_a_cuda_or_cpu_generator(cuda):
    y = torch.arange(10, device="cuda")
    for generator in (torch.Generator().manual_seed(0), torch.Generator(device="cuda").manual_seed(0), None):
        out = drop_labels(y, 0.5, 10, generator)
        assert on_cuda(out) and set(out.cpu().tolist()) <= set(range(11))


def test_mixture_sample_for_a_cuda_mixture(cuda):
    mixture = toy.ring_mixture()
    expected = toy.mixture_sample(mixture, 16, torch.Generator().manual_seed(2))
    gpu_mixture = toy.GaussianMixture(mixture.weights.to("cuda"), mixture.means.to("cuda"),
                                      mixture.covariances.to("cuda"))
    got = toy.mixture_sample(gpu_mixture, 16, torch.Generator().manual_seed(2))
    assert on_cuda(got) and torch.allclose(got.cpu(), expected)              # the same points on every device
    assert on_cuda(toy.mixture_sample(gpu_mixture, 16, torch.Generator(device="cuda").manual_seed(2)))
    assert on_cuda(toy.mixture_sample(gpu_mixture, 16))


def test_time_per_image_leaves_the_callers_model_where_it_was(cuda):
    model = unet()                                                          # on the CPU, in eval mode
    model.T = 1000
    seconds = inspection.time_per_image(model, batch_size=2, repeats=1, device="cuda")
    assert seconds > 0
    assert next(model.parameters()).device.type == "cpu" and not model.training
    assert all(p.grad is None for p in model.parameters())
    model(noise(1), torch.tensor([3]))                                     # an earlier cell still runs


# ----------------------------------------------------------------------------- samplers, trainer, sweeps, metrics

def test_every_sampler_runs_on_cuda(cuda):
    model = unet().to("cuda")
    x_T = noise(2).to("cuda")
    g = torch.Generator().manual_seed(0)
    chains = [samplers.ddpm_sample_progressive(model, x_T, SCHEDULE, generator=g),
              samplers.ddpm_sample_progressive(model, x_T, SCHEDULE, variance="beta", generator=g),
              samplers.ddim_sample_progressive(model, x_T, SCHEDULE, 5, eta=0.5, generator=g),
              samplers.ddim_invert_progressive(model, x_T, SCHEDULE, 5),
              samplers.heun_sample_progressive(model, x_T, SCHEDULE, 4),
              samplers.heun_sample_progressive(model, x_T, SCHEDULE, 4, grid="karras"),
              samplers.ddim_sample_progressive(model, x_T, SCHEDULE, 4, grid="karras"),
              samplers.flow_euler_sample_progressive(model, x_T, SCHEDULE, 4),
              samplers.flow_heun_sample_progressive(model, x_T, SCHEDULE, 4),
              samplers.ddim_sample_progressive(samplers.clipped_x0_eps_model(model, SCHEDULE), x_T, SCHEDULE, 3)]
    for chain in chains:
        assert on_cuda(samplers.final(chain))
    trajectory = samplers.record(samplers.ddim_sample_progressive(model, x_T, SCHEDULE, 4), every=2)
    assert trajectory.x_t.device.type == "cpu" and trajectory.sample.device.type == "cpu"   # record: the CPU
    guided = dl.guidance.cfg_eps_model(unet(num_classes=10).to("cuda"), torch.tensor([1, 2]), 2.0)
    assert on_cuda(samplers.final(samplers.ddim_sample_progressive(guided, x_T, SCHEDULE, 3)))


def test_training_on_cuda_gives_the_cpu_run(tmp_path):
    """Conditional training with label dropout and checkpoints: the same losses and weights as on the CPU."""
    images, labels = synthetic_mnist(16)
    config = TrainConfig(backbone="unet", backbone_kwargs={"base": 8, "num_classes": 10}, T=SCHEDULE.T, steps=6,
                         batch_size=4, checkpoint_every=3, seed=0, loss_weighting="min_snr")
    expected = train(config, images, labels, progress=False)
    with EmulatedCuda():
        got = train(config, images, labels, out_dir=tmp_path, device="cuda", progress=False)
        assert next(got.ema.parameters()).device.type == "cuda"
        got_weights = {k: v.cpu() for k, v in got.ema.state_dict().items()}
        model = dl.load_model(tmp_path / "last.pt", device="cuda")
        assert next(model.parameters()).device.type == "cuda"
    assert got.history["loss"] == pytest.approx(expected.history["loss"], rel=1e-5)
    assert all(torch.allclose(got_weights[k], v, atol=1e-6) for k, v in expected.ema.state_dict().items())


def test_the_sweeps_and_metrics_run_on_cuda(cuda):
    classifier = metrics.load_classifier(device="cuda")
    model = unet().to("cuda")
    x_T = noise(4).to("cuda")
    reference = metrics.classifier_features(noise(8, seed=3).clamp(-1, 1).to("cuda"), classifier)
    rows, images = sweeps.steps_sweep(model, x_T, SCHEDULE, [2, 3], classifier, reference, progress=False)
    assert len(rows) == 2 and all(on_cuda(x) for x in images.values())
    rows, _ = sweeps.nfe_sweep(model, x_T, SCHEDULE, [2, 3], classifier, reference, progress=False)
    assert len(rows) == 4
    errors = sweeps.solver_errors(model, x_T, SCHEDULE, [2], sweeps.ode_images(model, x_T, SCHEDULE, "DDIM", 8))
    assert all(e["mean_error"] >= 0 for e in errors)
    cond = unet(num_classes=10).to("cuda")
    labels = torch.tensor([1, 2, 3, 4], device="cuda")
    rows, _ = sweeps.guidance_sweep(cond, x_T, SCHEDULE, labels, [0.0, 2.0], classifier, reference,
                                    torch.ones(10), num_steps=2, progress=False)
    assert len(rows) == 2
    probs = metrics.classify(images[2], classifier)
    assert probs.shape == (4, 10)
    scores = metrics.score_samples(images[2], classifier, reference, labels)
    assert set(scores) >= {"fd"} or scores
    near = metrics.nearest_training_images(images[2], noise(6, seed=4).clamp(-1, 1).to("cuda"), classifier)
    assert near["pixels"][0].shape == (4,)
    trajectory = samplers.record(samplers.ddim_sample_progressive(model, x_T, SCHEDULE, 3))
    timesteps, share = sweeps.agreement_with_final(trajectory, classifier)
    assert len(timesteps) == 3 and share.shape == (3,)


# ----------------------------------------------------------------------------- copies and reads per step

def per_step(mode, steps):
    counts, last = [], mode.snapshot()
    for _ in steps:
        now = mode.snapshot()
        counts.append({k: now[k] - last[k] for k in ("h2d", "d2h")})
        last = now
    return counts[1:]


def test_a_sampling_step_reads_nothing_back_and_copies_at_most_its_noise(cuda):
    model = unet().to("cuda")
    x_T = noise(2).to("cuda")
    ddpm = per_step(cuda, samplers.ddpm_sample_progressive(model, x_T, SCHEDULE,
                                                          generator=torch.Generator().manual_seed(0)))
    assert all(c == {"h2d": 1, "d2h": 0} for c in ddpm[:-1])             # the seeded z, drawn on the CPU
    assert all(c == {"h2d": 0, "d2h": 0} for c in per_step(cuda, samplers.ddim_sample_progressive(model, x_T,
                                                                                                 SCHEDULE, 8)))
    assert all(c == {"h2d": 0, "d2h": 0} for c in per_step(cuda, samplers.heun_sample_progressive(model, x_T,
                                                                                                 SCHEDULE, 5)))


def test_a_training_step_reads_nothing_back(cuda):
    images, labels = synthetic_mnist(32)
    config = TrainConfig(backbone="unet", backbone_kwargs={"base": 8, "num_classes": 10}, T=SCHEDULE.T, steps=12,
                         batch_size=4, seed=0, checkpoint_every=100)
    marks = []
    train(config, images, labels, device="cuda", progress=False, callback=lambda trainer: marks.append(cuda.snapshot()))
    steps = [{k: b[k] - a[k] for k in ("h2d", "d2h")} for a, b in zip(marks, marks[1:])]
    # t, the noise and the label dropout's coin flips: drawn on the CPU (the same run on every device), copied
    # and once per epoch (every 8 steps here) the epoch's order of the images, to gather the batches on the device
    assert [s["h2d"] for s in steps[:-1]] == [3] * 7 + [4] + [3] * 2          # steps 2-11; step 9 starts epoch 2
    assert all(s["d2h"] == 0 for s in steps[:-1])
    trainer = Trainer(config, device="cuda")
    loss = trainer.train_step(images[:4].to("cuda"), labels[:4].to("cuda"))
    assert on_cuda(loss) and trainer.history["step"] == [1]


@pytest.mark.parametrize("kind", ["masked", "autoregressive"])
def test_token_training_reads_nothing_back_per_step(cuda, kind):
    """Notebook 14's trainer keeps its losses on the device as the image trainer does. Reads back in a whole run: the
    check of the training tokens (once) and the loss history at the end, however many steps; the batches are marked
    as checked, so the network does not read its tokens back at every step."""
    from diffusion_lib.masked_training import TokenTrainConfig, train_tokens
    from diffusion_lib.tokens import encode_names
    names = encode_names(["smith", "jones", "taylor", "brown", "wilson", "evans", "thomas", "roberts"])
    reads = {}
    for steps, data in ((3, names.to("cuda")), (6, names.to("cuda")), (5, names)):   # tokens on the GPU, or on the CPU
        config = TokenTrainConfig(kind=kind, network="char_transformer", data="surnames", steps=steps, batch_size=4,
                                  network_kwargs={"width": 16, "depth": 1, "heads": 2}, seed=0)
        before = cuda.snapshot()["d2h"]
        trainer, _ = train_tokens(config, data, device="cuda", progress=False)
        reads[steps] = cuda.snapshot()["d2h"] - before
        assert trainer.history["step"] == list(range(1, steps + 1))
        assert all(math.isfinite(v) for v in trainer.history["loss"])
    assert reads == {3: 2, 6: 2, 5: 1}            # CPU tokens: their check reads nothing from the GPU
