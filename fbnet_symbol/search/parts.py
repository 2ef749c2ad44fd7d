"""Each part's config, built once from a run's resolved settings.

The one place below the commands that reads :class:`~fbnet_symbol.settings.Settings`
field by field: the run environment, the loop (and its schedule) and the search task
each get a small config of their own, and read nothing else (docs/design.md: from a flag
to the loss).
"""
import os

from ..train.run_env import EnvConfig
from ..train.schedules import ScheduleConfig
from ..train.trainer import LoopConfig
from .task import SearchTaskConfig

# what describes a network: the space, its size and the head (args.json records them)
NETWORK_KEYS = ("space", "preset", "image_shape", "width_mult", "model_type", "margin_s",
                "margin_m", "feature_dim")


def network_description(settings):
    """``{key: value}`` of :data:`NETWORK_KEYS` (what ``space.architecture`` reads)."""
    return {k: getattr(settings, k) for k in NETWORK_KEYS}


def env_config(settings):
    s = settings
    # theta from --train-rec itself: InsightFace's folder, or --theta-rec naming that file
    same_file = bool(s.theta_rec) and os.path.abspath(s.theta_rec) == os.path.abspath(
        s.train_rec)
    return EnvConfig(out=s.save_model_path, train_rec=s.train_rec,
                     image_shape=tuple(s.image_shape), batch_size=s.batch_size, seed=s.seed,
                     theta_rec=s.theta_rec, theta_from_train=same_file,
                     from_data_dir=bool(s.data_dir), val_rec=s.val_rec, gpu=s.gpu,
                     kv_store=s.kv_store, progress=s.progress, embedded=s.embedded)


def schedule_config(settings):
    s = settings
    return ScheduleConfig(kind=s.lr_scheduler, lr=s.lr, epochs=s.epochs, lr_floor=s.lr_floor,
                          t_mul=s.t_mul, m_mul=s.m_mul, rise_region=s.rise_region,
                          cosine_decay_step=s.cosine_decay_step,
                          lr_step_epochs=s.lr_step_epochs)


def loop_config(settings):
    s = settings
    return LoopConfig(epochs=s.epochs, batch_size=s.batch_size, seed=s.seed,
                      schedule=schedule_config(s), momentum=s.momentum, wd=s.wd,
                      freeze_bn=s.freeze_bn, rand_mirror=s.rand_mirror,
                      log_frequence=s.log_frequence, save_frequence=s.save_frequence,
                      keep_checkpoints=s.keep_checkpoints, load_model_path=s.load_model_path,
                      record=s.to_dict(), resume_view=s.resume_view())


def search_task_config(settings):
    s = settings
    return SearchTaskConfig(
        network=network_description(s), alpha=s.alpha, beta=s.beta, loss_form=s.loss_form,
        noise_mode=s.noise, theta_init=s.theta_init, temperature=s.temperature,
        temperature_decay=s.temperature_decay, warmup_epochs=s.warmup_epochs,
        theta_lr=s.theta_lr, theta_wd=s.theta_wd, batch_size=s.batch_size, seed=s.seed,
        lut=s.lut, lut_batch_size=s.lut_batch_size, lut_timing=s.lut_timing)
