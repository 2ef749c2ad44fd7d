"""The study's embedded tasks: the data each makes (in the cache, on first use), the
network, the score compared and the budget its figures were made with (docs/reference.md:
The study, for how each was chosen)."""
import os


def _cluttered_digits():
    from ..data.digits import cluttered_digits
    paths = cluttered_digits()
    return dict(train_rec=paths["train"], theta_rec=paths["theta"], val_rec=paths["val"])


# The demo's faces (variation 1) saturate; with 2.5 times its jitter of pose, light and
# noise random networks spread (docs/reference.md: The study).
FACES_VARIATION = 2.5


def _synthetic_faces():
    from ..faces.files import cached_synthetic_faces
    folder = cached_synthetic_faces(size=32, variation=FACES_VARIATION)
    return dict(data_dir=folder, verify=(os.path.join(folder, "pairs.bin"),))


# An embedded task: its data (the settings that point at it, made in the cache on first
# use), its network, the score compared, and the budget its figures were made with; a flag
# given overrides any of them.
STUDY_TASKS = {
    "cluttered-digits": dict(
        data=_cluttered_digits, metric="val_acc",
        network=dict(space="fbnet", preset="seed", image_shape=(3, 16, 16), width_mult=0.5,
                     model_type="softmax"),
        alphas=(0.0, 1.0, 3.0), seeds=(0, 1), random=20, train_seeds=2,
        # learning rates from probes: the supernet learns fastest at 0.02, the deep
        # networks trained alone at 0.01 (docs/reference.md: The study)
        search=dict(epochs=6, lr=0.02), train=dict(epochs=10, lr=0.01, lr_scheduler="cosine"),
        # what else was tried: the temperature annealed to the 90-epoch final T within the
        # 6 epochs, which left the supernet at chance
        variants=[("annealed", dict(temperature_decay=round(0.956 ** (90 / 6.0), 4)),
                   (0.0, 1.0), (0,))],
        quick=dict(alphas=(0.0, 3.0), seeds=(0,), random=8, train_seeds=1, variants=[])),
    "synthetic-faces": dict(
        data=_synthetic_faces, metric="pairs_acc",
        network=dict(space="fbnet", preset="seed", width_mult=0.5, model_type="arcface",
                     margin_s=16.0, margin_m=0.3),
        alphas=(0.0, 1.0, 3.0), seeds=(0, 1), random=20, train_seeds=2,
        search=dict(epochs=6, lr=0.02), train=dict(epochs=10, lr=0.02, lr_scheduler="cosine"),
        quick=dict(alphas=(0.0, 3.0), seeds=(0,), random=8, train_seeds=1)),
}
