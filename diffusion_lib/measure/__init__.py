"""Measurement, built on the core: numbers about models, samples and runs. Nothing in the core imports it.

    metrics       quality of generated digits from a small MNIST classifier: confident share, accuracy,
                  a Frechet distance, within-class spread, what real data scores
    sweeps        sampling runs timed and scored: sweeps over steps, eta, the guidance weight and network
                  evaluations (DDIM and Heun), and the ODE solvers' error where the exact answer is known
    inspection    measurements inside a network or a run: shapes, receptive fields, seconds per image,
                  loss by timestep (and, for the 2-D toy, its floor and the network's excess), the machine
    experiments   notebook 09's MLP-versus-CNN experiment: the blog's recipe, the runs, the diagnosis
"""
