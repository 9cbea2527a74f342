"""Few-step generation (notebook 12): reflow's pairs, MeanFlow's identity and loss, the one-step sampler,
the second time input of the U-Net, checkpoints of the new kinds, and the command line's --steps 1.

The closed form used throughout: for Gaussian data x_0 ~ N(mu, sigma^2 I) on flow matching's straight path
x_s = (1 - s) x_0 + s eps, the marginal at s is N(m_s, std_s^2 I) with m_s = (1 - s) mu and
std_s = sqrt((1 - s)^2 sigma^2 + s^2), and the ODE's flow map is affine: the state at s of the path that
starts at noise eps is x_s = m_s + std_s eps. So
    the velocity             v(x, s)    = m_s' + std_s' (x - m_s) / std_s,
    the ODE's end from eps   x_0        = mu + sigma eps,
    the average velocity     u(z, r, s) = (z - x_r) / (s - r), with x_r = m_r + std_r (z - m_s) / std_s.
"""
import math
from dataclasses import replace

import pytest
import torch

import diffusion_lib as dl
from diffusion_lib import samplers
from diffusion_lib.backbones import UNet
from diffusion_lib.checkpoints import checkpoint_objective, load_checkpoint, load_model
from diffusion_lib.cli import main
from diffusion_lib.objectives import (MeanFlow, meanflow_target, noise_labels, objective_loss, reflow_pairs,
                                      teacher_velocity)
from diffusion_lib.pretrained import export_for_sampling
from diffusion_lib.schedules import make_schedule
from diffusion_lib.training import ResumeMismatchError, Trainer, init_from_teacher, train

from _tiny import one_thread, synthetic_mnist, tiny_config  # noqa: F401 (one_thread is autouse)

MU, SIGMA, T = 0.3, 0.5, 1000


def m(s):
    return (1 - s) * MU


def std(s):
    return ((1 - s) ** 2 * SIGMA ** 2 + s ** 2) ** 0.5


def d_std(s):
    return (-(1 - s) * SIGMA ** 2 + s) / std(s)


def flow_s(t):
    return (t.double() + 1) / T


def gaussian_velocity(x, t, y=None):
    """The exact velocity of Gaussian data, as a model in the code's timesteps (s = (t + 1) / T)."""
    s = flow_s(t).reshape(-1, 1, 1, 1)
    return (-MU + d_std(s) * (x - m(s)) / std(s)).to(x.dtype)


def gaussian_average_velocity_s(z, s, r):
    """u(z, r, s) in flow times (B,) of Gaussian data: the chord of the ODE path from s down to r."""
    s, r = s.reshape(-1, 1, 1, 1), r.reshape(-1, 1, 1, 1)
    x_r = m(r) + std(r) * (z - m(s)) / std(s)
    empty = s == r                                                 # the average over an empty interval: v itself
    chord = (z - x_r) / torch.where(empty, torch.ones_like(s), s - r)
    return torch.where(empty, -MU + d_std(s) * (z - m(s)) / std(s), chord)


def gaussian_average_velocity(x, t, y=None, r=None):
    """The same in the code's timesteps: the MeanFlow network's signature."""
    return gaussian_average_velocity_s(x, flow_s(t), flow_s(r)).to(x.dtype)


schedule = make_schedule("linear", T)


# ----------------------------------------------------------------------------- reflow

def test_reflow_pairs_couple_each_noise_with_its_ode_end():
    noise = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ends = reflow_pairs(gaussian_velocity, noise, schedule, num_steps=40, batch_size=4, progress=False)
    torch.testing.assert_close(ends, MU + SIGMA * noise, atol=3e-3, rtol=0)    # Heun's last step is Euler's
    finer = reflow_pairs(gaussian_velocity, noise, schedule, num_steps=160, progress=False)
    assert (finer - MU - SIGMA * noise).abs().max() < (ends - MU - SIGMA * noise).abs().max() / 4   # converges
    shuffled = reflow_pairs(gaussian_velocity, noise.flip(0), schedule, num_steps=40, progress=False)
    torch.testing.assert_close(shuffled, ends.flip(0), atol=1e-12, rtol=0)       # pair by pair, not as a set


def test_reflow_pairs_pass_each_batch_its_labels():
    seen = []

    def teacher(x, t, y):
        seen.append(y.clone())
        return torch.zeros_like(x) + y.reshape(-1, 1, 1, 1).to(x.dtype)        # velocity y: x_0 = eps - y

    noise = torch.zeros(5, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 3, 4])
    ends = reflow_pairs(teacher, noise, schedule, num_steps=3, y=y, batch_size=2, progress=False)
    torch.testing.assert_close(ends[:, 0, 0, 0], -y.float())
    assert [len(s) for s in seen[:1]] == [2]


def test_noise_labels_are_uniform_and_a_function_of_the_noise():
    noise = torch.randn(20_000, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = noise_labels(noise, 10)
    counts = torch.bincount(y, minlength=10).float()
    assert (counts / counts.sum() - 0.1).abs().max() < 0.01                   # 20,000 draws: sd of a share 0.002
    torch.testing.assert_close(noise_labels(noise[:50], 10), y[:50])
    assert not torch.equal(noise_labels(noise[:50], 10, seed=1), y[:50])


def test_reflow_training_uses_the_given_pairs(tmp_path):
    """The flow-matching loss on pairs: with noise given, x_s and the target are built from the pair."""
    images, _ = synthetic_mnist(8)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(3))
    result = train(tiny_config(objective="flow", steps=2, pairs="test pairs"), images, noise=noise, out_dir=tmp_path,
                   progress=False)
    assert result.step == 2 and load_checkpoint(tmp_path / "last.pt")["config"]["pairs"] == "test pairs"
    with pytest.raises(ValueError, match="pair one noise with each image"):
        train(tiny_config(objective="flow"), images, noise=noise[:3], progress=False)


def test_noise_end_share_puts_that_share_at_s_1_where_the_loss_is_one_euler_step_s_error():
    """FlowMatching(noise_end_share=p): a share p of the timesteps at T - 1 (s = 1, x_s = eps), the rest uniform;
    there the loss is |x_0 - (eps - u(eps, 1))|^2, the error of one Euler step from the noise. p = 0 draws what
    the plain objective draws."""
    flow = dl.objectives.FlowMatching(noise_end_share=0.25)
    t = flow.draw_t(40_000, schedule, torch.Generator().manual_seed(0))
    share = float((t == T - 1).double().mean())
    assert abs(share - (0.25 + 0.75 / T)) < 0.01                     # sd of the share 0.0022
    rest = t[t != T - 1]
    assert abs(float(rest.double().mean()) - (T - 2) / 2) < 10         # uniform on 0..T-2: mean 499, sd of it 1.7
    plain = dl.objectives.FlowMatching()
    torch.testing.assert_close(plain.draw_t(64, schedule, torch.Generator().manual_seed(5)),
                               dl.objectives.get_objective("flow").draw_t(64, schedule, torch.Generator().manual_seed(5)))
    x0 = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    net = lambda x, tt, y=None: 0.5 * x + 0.1  # noqa: E731   any network
    loss = objective_loss(net, x0, schedule, flow, torch.full((3,), T - 1), eps, reduction="none")
    torch.testing.assert_close(loss, (x0 - (eps - net(eps, None))).square().flatten(1).mean(1))
    for bad in (-0.1, 1.5, "0.5"):
        with pytest.raises(ValueError, match="noise_end_share"):
            dl.objectives.FlowMatching(noise_end_share=bad)


def test_a_distillation_share_is_recorded_and_a_resume_with_another_is_refused(tmp_path):
    images, _ = synthetic_mnist(8)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(3))
    config = tiny_config(objective="flow", objective_kwargs={"noise_end_share": 0.5}, steps=2, checkpoint_every=1)
    train(config, images, noise=noise, out_dir=tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["config"]["objective_kwargs"] == {"noise_end_share": 0.5}
    with pytest.raises(ResumeMismatchError, match="objective_kwargs"):
        train(replace(config, objective_kwargs={"noise_end_share": 0.9}, steps=3), images, noise=noise,
              out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="noise_end_share"):
        tiny_config(objective="flow", objective_kwargs={"noise_end_share": 2})


# ----------------------------------------------------------------------------- the second time input

def test_unet_without_interval_is_unchanged():
    plain = UNet(base=8)
    assert not any(k.startswith("interval_mlp") for k in plain.state_dict())
    assert "interval" not in plain.arch["kwargs"]
    with pytest.raises(ValueError, match="interval=True"):
        plain(torch.zeros(1, 1, 28, 28), torch.tensor([5]), r=torch.tensor([1]))
    with pytest.raises(ValueError, match="integer tensor"):
        plain(torch.zeros(1, 1, 28, 28), torch.tensor([5.0]))


def test_interval_unet_starts_as_its_teacher_for_every_r():
    torch.manual_seed(0)
    teacher = UNet(base=8, num_classes=10).eval()
    student = UNet(base=8, interval=True).eval()
    init_from_teacher(student, {"arch": teacher.arch, "model": teacher.state_dict()})
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([999, 500, 10])
    expected = teacher(x, t)                                                   # the null label: unconditional
    for r in (t, torch.tensor([-1, 200, 10]), torch.tensor([-1.0, -0.5, 3.25])):
        torch.testing.assert_close(student(x, t.float(), r=r.float()), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="must not exceed t"):
        student(x, t.float() - 1, r=t.float())
    with pytest.raises(ValueError, match=r"\[-1, T-1\]"):
        student(x, torch.tensor([1000.0, 1.0, 1.0]))


# ----------------------------------------------------------------------------- MeanFlow

def test_meanflow_identity_holds_for_the_exact_average_velocity():
    """u = v - (s - r) d/ds u with d/ds u from the jvp: the target equals u itself for the exact field."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 1, 3, 3, generator=g, dtype=torch.float64)
    s = torch.tensor([1.0, 0.9, 0.6, 0.4, 0.7], dtype=torch.float64)
    r = torch.tensor([0.0, 0.2, 0.6, 0.1, 0.65], dtype=torch.float64)
    v = gaussian_velocity(z, s * T - 1)
    target = meanflow_target(gaussian_average_velocity_s, z, s, r, v)
    torch.testing.assert_close(target, gaussian_average_velocity_s(z, s, r))
    wrong = meanflow_target(lambda z, s, r: gaussian_average_velocity_s(z, s, r) * 1.1, z, s, r, v)
    assert (wrong - target).abs().max() > 1e-2                                 # a wrong field is not its own target


def test_meanflow_jvp_matches_finite_differences():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)).double()

    def u(z, s, r):
        return net(torch.cat([z.flatten(1), s[:, None], r[:, None]], 1)).reshape(z.shape)

    z = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    v = torch.randn_like(z)
    s, r = torch.tensor([0.9, 0.5, 0.3], dtype=torch.float64), torch.tensor([0.1, 0.2, 0.0], dtype=torch.float64)
    h = 1e-6
    du_ds = (u(z + h * v, s + h, r) - u(z - h * v, s - h, r)) / (2 * h)        # the total derivative along (v, 1, 0)
    expected = v - (s - r).reshape(-1, 1, 1, 1) * du_ds
    torch.testing.assert_close(meanflow_target(u, z, s, r, v), expected, atol=1e-8, rtol=1e-7)


def test_meanflow_loss_is_zero_for_the_exact_field_and_draws_sorted_times():
    objective = MeanFlow(p=0.0)
    times = objective.draw_t(4000, schedule, torch.Generator().manual_seed(0))
    s, r = times[:, 0], times[:, 1]
    assert bool((r <= s).all()) and bool(((s > 0) & (s < 1)).all())
    assert abs(float((r < s).float().mean()) - 0.25) < 0.03

    # Gaussian data, exact field: the loss is the variance of the conditional velocity around its mean, which the
    # exact average velocity reaches only in expectation; at r = s = 1 (pure noise) the data's x_0 is irrelevant to z
    # only if x_0 is its mean: with x0 = mu exactly, v = eps - mu is the exact velocity at s = 1, and the loss is 0.
    x0 = torch.full((3, 1, 2, 2), MU, dtype=torch.float64)
    eps = torch.randn_like(x0)
    t = torch.tensor([[1.0, 0.0], [1.0, 0.5], [1.0, 1.0]], dtype=torch.float64)
    exact = lambda x, t_, y=None, r_=None: gaussian_average_velocity(x, t_, y, r_)   # noqa: E731
    loss = objective.loss(lambda x, tc, y, rc: exact(x, tc, y, rc), x0, t, eps, schedule)
    torch.testing.assert_close(loss, torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)


def test_meanflow_trainer_steps_on_an_interval_unet():
    trainer = Trainer(tiny_config(objective="meanflow", backbone_kwargs={"base": 8, "interval": True}))
    images, _ = synthetic_mnist(4)
    loss = trainer.train_step(images)
    assert math.isfinite(loss) and 0 < loss < 1                               # adaptive weighting: error / (error + c)
    with pytest.raises(ValueError, match="interval"):
        Trainer(tiny_config(objective="meanflow"))
    with pytest.raises(ValueError, match="interval"):
        Trainer(tiny_config(objective="flow", backbone_kwargs={"base": 8, "interval": True}))


# ----------------------------------------------------------------------------- MeanFlow distilled from a teacher

def gaussian_velocity_s(z, s, y=None):
    """The exact velocity of Gaussian data in flow times s (B,): a perfect teacher (MeanFlow.with_teacher)."""
    s = s.reshape(-1, 1, 1, 1)
    return -MU + d_std(s) * (z - m(s)) / std(s)


def test_distilled_meanflow_loss_is_zero_for_any_data_with_the_exact_teacher():
    """With the exact velocity as the teacher, the target is the exact average velocity for every (x_0, eps), so
    the loss of the exact field is 0 for any data; with the straight path's eps - x_0 it is not (its noise)."""
    g = torch.Generator().manual_seed(0)
    x0 = MU + SIGMA * torch.randn(6, 1, 2, 2, generator=g, dtype=torch.float64)     # draws of the data, not its mean
    eps = torch.randn(6, 1, 2, 2, generator=g, dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0], [0.9, 0.2], [0.5, 0.5], [0.7, 0.1], [0.3, 0.0], [0.95, 0.6]], dtype=torch.float64)
    exact = lambda x, tc, y, rc: gaussian_average_velocity(x, tc, y, rc)           # noqa: E731
    distilled = MeanFlow(p=0.0).with_teacher(gaussian_velocity_s)
    torch.testing.assert_close(distilled.loss(exact, x0, t, eps, schedule), torch.zeros(6, dtype=torch.float64),
                               atol=1e-10, rtol=0)
    assert float(MeanFlow(p=0.0).loss(exact, x0, t, eps, schedule).min()) > 1e-3     # the plain target's noise
    assert MeanFlow().velocity is None and "velocity=<teacher>" in repr(distilled)   # with_teacher made a copy


class LabelledVelocity(torch.nn.Module):
    """A fake conditional flow teacher: v = x * (t + 1) + 10 y, which records the timesteps and labels it is given."""
    num_classes, null_label = 10, 10

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, y=None):
        self.calls.append((t.clone(), None if y is None else y.clone()))
        label = torch.zeros(len(x)) if y is None else y.double()
        return x * (t.double() + 1).reshape(-1, 1, 1, 1) + 10 * label.reshape(-1, 1, 1, 1)


def test_teacher_velocity_reads_the_nearest_trained_timestep_and_guides():
    teacher = LabelledVelocity()
    z = torch.ones(3, 1, 2, 2, dtype=torch.float64)
    s = torch.tensor([1.0, 0.0004, 0.4996], dtype=torch.float64)         # s T - 1 = 999, -0.6, 498.6
    y = torch.tensor([2, 7, 10])
    v = teacher_velocity(teacher, z, s, y, T=T)                           # w = 1: the conditional velocity, one call
    assert len(teacher.calls) == 1 and teacher.calls[0][0].tolist() == [999, 0, 499]
    assert teacher.calls[0][0].dtype == torch.long
    torch.testing.assert_close(v[:, 0, 0, 0], torch.tensor([1000 + 20, 1 + 70, 500 + 100], dtype=torch.float64))
    guided = teacher_velocity(teacher, z, s, y, T=T, w=3.0)               # v_u + 3 (v_c - v_u), v_u with label 10
    torch.testing.assert_close(guided[:, 0, 0, 0], torch.tensor([1000 + 100 + 3 * (20 - 100), 1 + 100 + 3 * (70 - 100),
                                                                  500 + 100], dtype=torch.float64))
    assert teacher.calls[1][1].tolist() == [2, 7, 10, 10, 10, 10]         # one batched call: the labels, then null


@pytest.fixture(scope="module")
def flow_teachers(tmp_path_factory):
    """Tiny flow teachers, conditional and not, and an eps model (not a teacher), as checkpoints."""
    root = tmp_path_factory.mktemp("teachers")
    images, labels = synthetic_mnist(8)
    train(tiny_config(objective="flow", steps=2, backbone_kwargs={"base": 8, "num_classes": 10}), images, labels,
          out_dir=root / "cond", progress=False)
    train(tiny_config(objective="flow", steps=2), images, out_dir=root / "uncond", progress=False)
    train(tiny_config(steps=2), images, out_dir=root / "eps", progress=False)
    return root


def distilled_config(teacher, **overrides):
    settings = dict(objective="meanflow", backbone_kwargs={"base": 8, "interval": True}, teacher=teacher, steps=2)
    settings.update(overrides)
    return tiny_config(**settings)


def test_an_unconditional_student_of_a_conditional_teacher_gives_the_teacher_the_data_labels(flow_teachers):
    images, labels = synthetic_mnist(8)
    trainer = Trainer(distilled_config(str(flow_teachers / "cond" / "last.pt"), label_dropout=0.5))
    assert trainer.label_reader is trainer.teacher and trainer.model.num_classes is None
    seen = []
    trainer.teacher.register_forward_hook(lambda module, args, out: seen.append(args[2].clone()))
    loss = trainer.train_step(images[:4], labels[:4])
    assert math.isfinite(float(loss))
    assert seen[0].tolist() == labels[:4].tolist()                       # the true labels: no dropout for a teacher
    assert all(not p.requires_grad for p in trainer.teacher.parameters())
    result = train(distilled_config(str(flow_teachers / "cond" / "last.pt")), images, labels, progress=False)
    assert result.step == 2 and result.ema.num_classes is None
    with pytest.raises(ValueError, match="unconditional"):               # labels with nobody to read them
        train(distilled_config(str(flow_teachers / "uncond" / "last.pt")), images, labels, progress=False)


def test_a_conditional_student_with_guidance_built_in_records_and_resumes_it(flow_teachers, tmp_path):
    images, labels = synthetic_mnist(8)
    teacher = str(flow_teachers / "cond" / "last.pt")
    config = distilled_config(teacher, teacher_w=2.0, backbone_kwargs={"base": 8, "interval": True, "num_classes": 10},
                              checkpoint_every=1)
    train(config, images, labels, out_dir=tmp_path, progress=False)
    record = load_checkpoint(tmp_path / "last.pt")["config"]
    assert record["teacher"] == teacher and record["teacher_w"] == 2.0
    with pytest.raises(ResumeMismatchError, match="teacher_w"):
        train(replace(config, teacher_w=3.0, steps=3), images, labels, out_dir=tmp_path, progress=False)


def test_teacher_settings_that_cannot_work_are_refused(flow_teachers):
    cond, uncond = str(flow_teachers / "cond" / "last.pt"), str(flow_teachers / "uncond" / "last.pt")
    with pytest.raises(ValueError, match="objective 'meanflow' only"):
        tiny_config(objective="flow", teacher=uncond)
    with pytest.raises(ValueError, match="none is given"):
        tiny_config(objective="meanflow", backbone_kwargs={"base": 8, "interval": True}, teacher_w=2.0)
    with pytest.raises(ValueError, match="unconditional"):               # nothing to guide
        Trainer(distilled_config(uncond, teacher_w=2.0))
    with pytest.raises(ValueError, match="'eps'"):                       # a teacher must give a velocity
        Trainer(distilled_config(str(flow_teachers / "eps" / "last.pt")))
    with pytest.raises(ValueError, match="T = 1000"):
        Trainer(distilled_config(cond, T=500))


def test_cli_trains_a_distilled_student_and_refuses_teacher_options_alone(flow_teachers, tmp_path, capsys,
                                                                         monkeypatch):
    import diffusion_lib.cli as cli
    images, labels = synthetic_mnist(8)
    monkeypatch.setattr("diffusion_lib.data.load_dataset", lambda *a, **k: (images, labels))
    teacher = str(flow_teachers / "cond" / "last.pt")
    code = main(["train", "--backbone", "unet", "--base", "8", "--backbone-kwargs", '{"interval": true}',
                 "--objective", "meanflow", "--teacher", teacher, "--steps", "1", "--batch-size", "4", "--device",
                 "cpu", "--out", str(tmp_path / "student")])
    assert code == 0 and load_checkpoint(tmp_path / "student" / "last.pt")["config"]["teacher"] == teacher
    capsys.readouterr()
    uncond = str(flow_teachers / "uncond" / "last.pt")
    for argv, message in ((["--objective", "flow", "--teacher", teacher], "--objective meanflow"),
                          (["--objective", "meanflow", "--teacher-w", "2"], "--teacher-w guides a --teacher"),
                          (["--objective", "meanflow", "--backbone-kwargs", '{"interval": true}', "--teacher", uncond,
                            "--teacher-w", "2"], "--teacher-w 2 guides a conditional --teacher")):
        assert main(["train", "--steps", "1", "--out", str(tmp_path / "x"), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert cli.FLAGS["teacher_w"] == "--teacher-w"


# ----------------------------------------------------------------------------- one- and few-step sampling

@pytest.mark.parametrize("num_steps", [1, 2, 4])
def test_meanflow_sampler_with_the_exact_average_velocity_is_exact(num_steps):
    z = torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    steps = list(samplers.meanflow_sample_progressive(gaussian_average_velocity, z, schedule, num_steps))
    assert len(steps) == num_steps and [s.t for s in steps] == samplers.flow_timesteps(num_steps, T)
    x0 = steps[-1].x_next
    torch.testing.assert_close(x0, MU + SIGMA * z, atol=1e-12, rtol=0)         # the ODE's end, image by image
    assert abs(float(x0.mean()) - MU) < 0.02 and abs(float(x0.std()) - SIGMA) < 0.01   # so N(mu, sigma^2)


def test_one_euler_step_of_the_velocity_is_not_exact():
    """What MeanFlow fixes: one Euler step of the (exact) instantaneous velocity misses the distribution."""
    z = torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = samplers.final(samplers.flow_euler_sample_progressive(gaussian_velocity, z, schedule, 1))
    assert abs(float(x0.std()) - SIGMA) > 0.2                                # x_0 = z - v(z, 1) = mu: std 0


# ----------------------------------------------------------------------------- checkpoints and the command line

@pytest.fixture(scope="module")
def few_step_checkpoints(tmp_path_factory):
    """A MeanFlow checkpoint, a conditional one, a reflow student's (flow, trained on pairs from the flow
    teacher's weights), and a conditional reflow student's (labels, no label dropout: guidance built in)."""
    root = tmp_path_factory.mktemp("few_step")
    images, labels = synthetic_mnist(8)
    teacher = train(tiny_config(objective="flow", steps=2), images, out_dir=root / "teacher", progress=False)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
    pairs = reflow_pairs(teacher.ema, noise, schedule, num_steps=2, progress=False).clamp(-1, 1)
    train(tiny_config(objective="flow", steps=2, init_from=str(root / "teacher" / "last.pt"), pairs="tiny"),
          pairs, noise=noise, out_dir=root / "reflow", progress=False)
    train(tiny_config(objective="meanflow", steps=2, backbone_kwargs={"base": 8, "interval": True},
                      init_from=str(root / "teacher" / "last.pt")), images, out_dir=root / "meanflow", progress=False)
    train(tiny_config(objective="meanflow", steps=2, backbone_kwargs={"base": 8, "interval": True, "num_classes": 10}),
          images, labels, out_dir=root / "meanflow_cond", progress=False)
    train(tiny_config(objective="flow", steps=2, backbone_kwargs={"base": 8, "num_classes": 10}, label_dropout=0.0,
                      pairs="tiny, guided"), pairs, labels, noise=noise, out_dir=root / "reflow_cond", progress=False)
    return root


def test_new_checkpoints_round_trip_and_record_what_they_are(few_step_checkpoints, tmp_path):
    for kind, objective in (("reflow", "flow"), ("meanflow", "meanflow")):
        path = few_step_checkpoints / kind / "last.pt"
        exported = export_for_sampling(path, tmp_path / f"{kind}.pt")
        record = load_checkpoint(exported)
        assert checkpoint_objective(record) == objective
        assert record["config"]["init_from"].endswith("last.pt")
        if kind == "reflow":
            assert record["config"]["pairs"] == "tiny"
        a, b = load_model(path), load_model(exported)
        x = torch.randn(2, 1, 28, 28)
        t = torch.tensor([999, 3])
        kwargs = {"r": torch.tensor([-1, 1])} if kind == "meanflow" else {}
        torch.testing.assert_close(a(x, t, **kwargs), b(x, t, **kwargs), atol=0, rtol=0)
    assert load_model(few_step_checkpoints / "meanflow" / "last.pt").interval_mlp is not None


@pytest.mark.parametrize("kind, sampler", [("reflow", "flow-euler"), ("meanflow", "meanflow")])
def test_cli_samples_the_new_models_in_one_step(few_step_checkpoints, tmp_path, capsys, kind, sampler):
    out = tmp_path / f"{kind}.png"
    code = main(["sample", "--checkpoint", str(few_step_checkpoints / kind / "last.pt"), "--steps", "1", "--n", "4",
                 "--device", "cpu", "--out", str(out)])
    assert code == 0 and out.exists()
    assert f"({sampler}," in capsys.readouterr().out


def test_cli_samples_a_conditional_meanflow_model_unguided_by_default_and_guided_with_w(few_step_checkpoints,
                                                                                       tmp_path):
    """One step of a conditional MeanFlow model: by default w = 1 (its guidance, if any, is built in), which is its
    conditional average velocity; --w 2 mixes the conditional and unconditional ones, u_u + 2 (u_c - u_u)."""
    import numpy as np
    from PIL import Image
    from diffusion_lib.images import image_grid
    path = few_step_checkpoints / "meanflow_cond" / "last.pt"
    model = load_model(path)
    x_1 = samplers.sample_noise(4, model.image_shape, generator=torch.Generator().manual_seed(0))
    t, r = torch.full((4,), T - 1), torch.full((4,), -1)
    labels = torch.tensor([3, 3, 3, 3])
    with torch.no_grad():
        u_c, u_u = model(x_1, t, labels, r=r), model(x_1, t, torch.full((4,), 10), r=r)
    for w, u in ((None, u_c), ("2", u_u + 2 * (u_c - u_u))):
        out = tmp_path / f"w{w}.png"
        argv = ["sample", "--checkpoint", str(path), "--n", "4", "--label", "3", "--device", "cpu", "--out", str(out)]
        assert main(argv + ([] if w is None else ["--w", w])) == 0
        pixels = (image_grid(x_1 - u) * 255).round().to(torch.uint8).numpy()
        assert np.abs(np.asarray(Image.open(out)).astype(int) - pixels).max() <= 1


def test_cli_samples_a_student_with_guidance_built_in_at_w_1_and_refuses_other_w(few_step_checkpoints, tmp_path,
                                                                                  capsys):
    """A conditional flow student trained without label dropout (reflow on a guided teacher's pairs): by default
    one Euler step of its conditional velocity, x_0 = x_1 - v(x_1, T - 1, label); its null label never trained, so
    a --w that mixes it in is refused (exit 2, no traceback), and --w 1 is the default."""
    import numpy as np
    from PIL import Image
    from diffusion_lib.images import image_grid
    path = few_step_checkpoints / "reflow_cond" / "last.pt"
    model = load_model(path)
    x_1 = samplers.sample_noise(4, model.image_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        v = model(x_1, torch.full((4,), T - 1), torch.arange(4) % 10)
    pixels = (image_grid(x_1 - v) * 255).round().to(torch.uint8).numpy()
    for extra in ([], ["--w", "1"]):
        out = tmp_path / f"cond{len(extra)}.png"
        assert main(["sample", "--checkpoint", str(path), "--steps", "1", "--n", "4", "--device", "cpu",
                     "--out", str(out)] + extra) == 0
        assert np.abs(np.asarray(Image.open(out)).astype(int) - pixels).max() <= 1
    for w in ("0", "2"):
        out = tmp_path / f"refused{w}.png"
        code = main(["sample", "--checkpoint", str(path), "--steps", "1", "--n", "4", "--w", w, "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and "without label dropout" in err and "Traceback" not in err and not out.exists()


def test_cli_samples_a_flow_model_with_the_flow_sde(few_step_checkpoints, tmp_path, capsys):
    """--sampler flow-sde draws the grid that samplers.flow_sde_sample_progressive draws from the same seed."""
    import numpy as np
    from PIL import Image
    from diffusion_lib.images import image_grid
    path = few_step_checkpoints / "reflow" / "last.pt"
    out = tmp_path / "sde.png"
    assert main(["sample", "--checkpoint", str(path), "--sampler", "flow-sde", "--steps", "3", "--n", "4", "--seed", "5",
                 "--device", "cpu", "--out", str(out)]) == 0
    assert "(flow-sde," in capsys.readouterr().out
    model = load_model(path)
    g = torch.Generator().manual_seed(5)
    x_1 = samplers.sample_noise(4, model.image_shape, generator=g)
    expected = samplers.final(samplers.flow_sde_sample_progressive(model, x_1, model.schedule, 3, generator=g))
    pixels = (image_grid(expected) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(np.asarray(Image.open(out)), pixels)


def test_cli_refuses_a_flow_sampler_for_meanflow(few_step_checkpoints, tmp_path, capsys):
    code = main(["sample", "--checkpoint", str(few_step_checkpoints / "meanflow" / "last.pt"), "--sampler",
                 "flow-euler", "--steps", "1", "--n", "2", "--out", str(tmp_path / "x.png")])
    assert code == 2 and "--sampler meanflow" in capsys.readouterr().err


# ----------------------------------------------------------------------------- on CUDA (the tests' emulation)

def test_few_step_pieces_run_on_cuda_and_match_the_cpu():
    """Under the CUDA-rules emulation: reflow's pairs (noise drawn on the CPU, moved batch by batch, ends back on the
    CPU), a MeanFlow training step (the jvp target) and the MeanFlow sampler on a CUDA network, matching the CPU."""
    from cuda_emulation import EmulatedCuda
    torch.manual_seed(0)
    net = UNet(base=8, mults=(1, 1, 1), interval=True).eval()
    noise = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    expected_ends = reflow_pairs(net, noise, schedule, num_steps=2, progress=False)
    expected_mf = samplers.final(samplers.meanflow_sample_progressive(net, noise, schedule, 2))
    images, _ = synthetic_mnist(4)
    config = tiny_config(objective="meanflow", backbone_kwargs={"base": 8, "mults": [1, 1, 1], "interval": True})
    expected_loss = float(Trainer(config).train_step(images))
    with EmulatedCuda():
        cuda_net = net.to("cuda")
        ends = reflow_pairs(cuda_net, noise, schedule, num_steps=2, progress=False)
        mf = samplers.final(samplers.meanflow_sample_progressive(cuda_net, noise.to("cuda"), schedule, 2)).cpu()
        loss = float(Trainer(config, device="cuda").train_step(images))
    assert ends.device.type == "cpu"
    torch.testing.assert_close(ends, expected_ends, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mf, expected_mf, atol=1e-5, rtol=1e-5)
    assert loss == pytest.approx(expected_loss, rel=1e-4)


@pytest.mark.parametrize("conditional_student", [False, True])
def test_a_distilled_meanflow_step_on_cuda_gives_the_cpu_loss(flow_teachers, conditional_student):
    """The teacher is loaded onto the trainer's device, the labels reach it there, and the step's loss is the CPU's:
    an unconditional student of a conditional teacher, and a conditional one with guidance built in."""
    from cuda_emulation import EmulatedCuda
    images, labels = synthetic_mnist(4)
    kwargs = {"base": 8, "interval": True, **({"num_classes": 10} if conditional_student else {})}
    config = distilled_config(str(flow_teachers / "cond" / "last.pt"), backbone_kwargs=kwargs,
                              teacher_w=2.0 if conditional_student else 1.0)
    expected = float(Trainer(config).train_step(images, labels))
    with EmulatedCuda():
        trainer = Trainer(config, device="cuda")
        assert next(trainer.teacher.parameters()).device.type == "cuda"
        loss = float(trainer.train_step(images, labels))
    assert loss == pytest.approx(expected, rel=1e-4)


def test_the_speed_benchmark_times_each_shipped_student_in_one_step(capsys):
    """benchmarks/few_step.py speed: one row per model, with the threads used, best <= median, and the conditional
    student timed like the others (labels given, one evaluation)."""
    import importlib.util
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "few_step.py"
    spec = importlib.util.spec_from_file_location("few_step_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["speed", "--models", "reflow", "reflow_cond", "--repeats", "3", "--threads", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["model"] for row in rows] == ["reflow", "reflow_cond"]
    for row in rows:
        assert row["threads"] == 1 and row["repeats"] == 3
        assert 0 < row["best_seconds_64"] <= row["median_seconds_64"]


@pytest.mark.parametrize("times", [{"noise_end_share": 0.5}, {"t_mean": 0.0, "t_std": 1.0}], ids=["distil", "logit"])
def test_flow_matching_with_drawn_times_trains_on_cuda_like_the_cpu(times):
    """Under the CUDA-rules emulation: a flow-matching step with a share at s = 1, or with logit-normal times, draws
    its times on the CPU and moves them, so the step's loss is the CPU's."""
    from cuda_emulation import EmulatedCuda
    images, _ = synthetic_mnist(4)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(3))
    config = tiny_config(objective="flow", objective_kwargs=times, steps=1, pairs="test pairs")
    expected = float(Trainer(config).train_step(images, noise=noise))
    with EmulatedCuda():
        loss = float(Trainer(config, device="cuda").train_step(images, noise=noise))
    assert loss == pytest.approx(expected, rel=1e-4)
