"""Worked solution of notebook 05's exercise (the noise-prediction loss, from the equation) and of its experiments
(the linear and the cosine schedule; min-SNR weighting; each trained and measured)."""
import torch

import diffusion_lib as dl


def my_loss(model, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule) -> torch.Tensor:
    """Mean of (eps - eps_theta(x_t, t))^2 with x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
    alpha_bar = schedule.alpha_bar[t].reshape(-1, 1, 1, 1)            # (B, 1, 1, 1): one alpha_bar_t per image
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps        # (B, 1, 28, 28)
    return ((eps - model(x_t, t)) ** 2).mean()                        # a scalar: mean over images and pixels


ANSWER = my_loss   # what the notebook's check cell passes to dl.exercises.check("05", ...)


def schedules_experiment(images: torch.Tensor, test_images: torch.Tensor, steps: int, batch_size: int,
                         timesteps=(10, 100, 250, 500, 750, 900), base: int = 16, n_eval: int = 200) -> dict:
    """The experiment after the exercise: two short runs that differ only in the schedule, and L(t) of each, measured
    on test images with the schedule it was trained with."""
    measured = {"timesteps": list(timesteps)}
    for name in ("linear", "cosine"):
        config = dl.TrainConfig(backbone="unet", backbone_kwargs={"base": base}, schedule=name, steps=steps,
                                batch_size=batch_size, lr=1e-3, precision="bf16", seed=0)
        result = dl.train(config, images, progress=False)
        measured[name] = dl.inspection.loss_by_timestep(result.ema, test_images[:n_eval], dl.make_schedule(name),
                                                        list(timesteps))
    return measured


def min_snr_experiment(images: torch.Tensor, test_images: torch.Tensor, steps: int, batch_size: int,
                       timesteps=(0, 10, 50, 100, 250, 500, 750, 900), base: int = 16, n_eval: int = 200) -> dict:
    """The second experiment: two short runs that differ only in the loss weighting ("none" and "min_snr"), and
    L(t) of each on test images (both with the linear schedule)."""
    measured = {"timesteps": list(timesteps)}
    schedule = dl.make_schedule("linear")
    for weighting in ("none", "min_snr"):
        config = dl.TrainConfig(backbone="unet", backbone_kwargs={"base": base}, loss_weighting=weighting,
                                steps=steps, batch_size=batch_size, lr=1e-3, precision="bf16", seed=0)
        result = dl.train(config, images, progress=False)
        measured[weighting] = dl.inspection.loss_by_timestep(result.ema, test_images[:n_eval], schedule,
                                                             list(timesteps))
    return measured


# In the notebook: steps=max(30, B.train_steps // 10), batch_size=32. The test suite runs smaller versions (20 steps
# of 32 images, base 8: a few seconds each); the directions are already there.
def _small(experiment):
    return lambda: experiment(dl.load_mnist()[0], dl.load_mnist(train=False)[0], steps=20, batch_size=32, base=8,
                              n_eval=100)


EXPERIMENTS = {"05-schedules": _small(schedules_experiment), "05-min-snr": _small(min_snr_experiment)}
