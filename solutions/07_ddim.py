"""Worked solution of notebook 07's exercise (one DDIM update with eta, by hand) and of its experiment (the error of
DDIM inversion against the number of steps)."""
import torch

import diffusion_lib as dl


def ddim_update(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float, eta: float,
                noise: torch.Tensor) -> torch.Tensor:
    """x_prev = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma_t^2) eps + sigma_t noise."""
    x0_pred = (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t ** 0.5            # Eq. 12, "predicted x_0"
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)) ** 0.5  # Eq. 16
    direction = (1 - alpha_bar_prev - sigma ** 2) ** 0.5 * eps                      # "direction pointing to x_t"
    return alpha_bar_prev ** 0.5 * x0_pred + direction + sigma * noise               # (B, 1, 28, 28)


ANSWER = ddim_update   # what the notebook's check cell passes to dl.exercises.check("07", ...)


def inversion_experiment(model, schedule, digits: torch.Tensor, steps) -> dict:
    """The experiment after the exercise: encode the digits with S DDIM steps, decode the result with S steps, and
    measure the mean |decoded - original| per pixel, for every S in `steps`."""
    errors = []
    for S in steps:
        latents = dl.sweeps.ddim_encode(model, digits, schedule, S).sample      # (B, 1, 28, 28): x_T
        decoded = dl.sweeps.ddim_images(model, latents, schedule, S)
        errors.append(float((decoded - digits).abs().mean()))
    return {"steps": list(steps), "errors": errors}


def _shipped_experiment():
    test_images, test_labels = dl.load_mnist(train=False)
    digits = test_images[[int((test_labels == d).nonzero()[0]) for d in range(4)]]     # one 0, 1, 2 and 3
    return inversion_experiment(dl.pretrained.load_pretrained("unet"), dl.pretrained.pretrained_schedule("unet"),
                                digits, [2, 5, 10])


# In the notebook: inversion_experiment(model, schedule, digits, sorted({2, 5, 10, 20, B.ddim_steps})).
EXPERIMENTS = {"07-inversion": _shipped_experiment}
