"""The entry point of a run: settings in, a search or a fixed-architecture training out.

    from fbnet_symbol.search import SearchConfig, SearchRun
    summary = SearchRun(SearchConfig(train_rec="train.rec", theta_rec="theta.rec")).run()

:class:`SearchRun` resolves the settings (:func:`~fbnet_symbol.settings.resolve`), sets up
devices, kvstore and data (:class:`~fbnet_symbol.train.run_env.RunEnv`), picks the task
and its report — the FBNet search (:class:`~fbnet_symbol.search.task.SearchTask`,
:class:`~fbnet_symbol.search.report.SearchReport`), or with ``arch`` the training of that
architecture (:class:`~fbnet_symbol.train.task.TrainTask`, ``TrainReport``) — and hands
them to the :class:`~fbnet_symbol.train.trainer.Trainer` with the run's evaluations. What
it built is public: :attr:`settings`, :attr:`env`, :attr:`task`, :attr:`trainer`.
"""
import logging
import os
from dataclasses import replace

from ..checkpoint import find_checkpoint
from ..data.digits import embedded_digits
from ..data.insightface import data_folder, folder_image_shape
from ..errors import FBNetError
from ..fileio import FolderLock
from ..faces.verify import verification_evaluation
from ..settings import RESUME_KEYS, Settings, resolve
from ..threads import choose_threads, omp_threads, use_threads
from ..train.evaluation import top1_evaluation
from ..train.run_env import RunEnv
from ..train.task import TrainReport, TrainTask
from ..train.trainer import Callback, StopRequested, Trainer  # noqa: F401 (StopRequested: API)
from .parts import env_config, loop_config, search_task_config
from .report import SearchReport
from .task import SearchTask

logger = logging.getLogger(__name__)

SearchConfig = Settings  # the name this API had first


def resolve_run(settings):
    """The settings of a run: its data files located (``--data-dir``'s train.rec, pair sets
    and face size; the embedded digits when no file is given), every default filled
    (:func:`~fbnet_symbol.settings.resolve`). ``settings`` is not changed."""
    s = settings
    verify = [v for v in (s.verify.split(",") if isinstance(s.verify, str) else s.verify or ())
              if v]
    if s.data_dir:
        train, verify = data_folder(s.data_dir, verify)
        # settings resolved once already (a study's runs) name the folder's own train.rec
        if (s.train_rec or s.theta_rec) and (s.train_rec, s.theta_rec) != (train, train):
            raise FBNetError("give --data-dir or --train-rec/--theta-rec, not both")
        # theta is split off train.rec by image (RunEnv)
        s = replace(s, train_rec=train, theta_rec=train,
                    image_shape=s.image_shape or folder_image_shape(s.data_dir))
    for v in verify:
        if not os.path.isfile(v):
            raise FBNetError("--verify %s does not exist; give a .bin pair set (lfw.bin, ...) "
                             "or make one with python -m fbnet_symbol.data make-pairs" % v)
    s = resolve(replace(_as_started(s), verify=tuple(verify)))
    if s.embedded:
        paths = embedded_digits()
        s = replace(s, train_rec=paths["train"], theta_rec=paths["theta"],
                    val_rec=s.val_rec or paths["val"])
    return s


def _as_started(s):
    """A resumed run keeps the settings its checkpoint was started with where this one
    leaves them unset — the values the run derived (e.g. a short search's warm-up and
    temperature decay, which follow ``--epochs``) included, so that ``--epochs`` can grow."""
    if not s.load_model_path:
        return s
    try:
        started = find_checkpoint(s.load_model_path).meta.get("config", {})
    except FBNetError:
        return s  # the resume itself says what is wrong, where it knows the cluster

    adopted = {k: started[k] for k in RESUME_KEYS if getattr(s, k) is None and
               started.get(k) is not None}
    if "image_shape" in adopted:
        adopted["image_shape"] = tuple(adopted["image_shape"])
    return replace(s, **adopted)


class SearchRun:
    """One run. ``settings`` is not changed; :attr:`settings` holds the resolved copy."""

    def __init__(self, settings, evaluations=None):
        s = self.settings = resolve_run(settings)
        use_threads(choose_threads(s.threads)[0])  # warns if MXNet keeps another
        self.env = RunEnv(env_config(s), ("train",) if s.fixed else ("train", "theta"))
        # one run per output folder, refused before any work (rank 0 alone writes)
        self.lock = FolderLock(self.env.out)
        if self.env.writer:
            taken_over = self.lock.acquire()
            if taken_over:
                logger.info("took over the lock of a run that is gone (%s)", taken_over)
        try:
            self._build(evaluations)
        except BaseException:
            self.lock.release(tidy=True)  # a refused start leaves no folder behind
            raise

    def _build(self, evaluations):
        s = self.settings
        if s.fixed:
            self.task = TrainTask(s.arch, self.env)
            report = TrainReport(self.task, self.env.out)
        else:
            self.task = SearchTask(search_task_config(s), self.env)
            report = SearchReport(self.task, self.env.out)
        if evaluations is None:
            evaluations = []
            if "val" in self.env.data:  # evaluations run on rank 0, which alone checks val
                evaluations.append(top1_evaluation(self.env.data["val"], self.env.image_shape))
            if s.verify and self.env.writer:
                evaluations.append(verification_evaluation(s.verify, self.env.image_shape,
                                                           self.env.progress))
        self.trainer = Trainer(loop_config(s), self.env, self.task, evaluations,
                               [_RunLog(s, self.env, self.task), report])

    def run(self, stop_after_steps=None):
        """Train to the last epoch; returns a summary dict (see :meth:`Trainer.run`)."""
        try:
            return self.trainer.run(stop_after_steps)
        finally:
            self.lock.release(tidy=True)


class _RunLog(Callback):
    """The run's opening log line and the summary keys every run has."""

    def __init__(self, settings, env, task):
        self.settings, self.env, self.task = settings, env, task

    def on_start(self):
        s, env = self.settings, self.env
        splits = dict.fromkeys(self.task.split(phase) for phase in self.task.phases(s.epochs - 1))
        logger.info("%s %s/%s at %s on %s (%d threads): %d classes, batch %d, %d epochs "
                    "(%d warm-up), %s images",
                    "training %s from scratch:" % (s.arch.name or "the architecture")
                    if s.fixed else "searching", s.space, s.preset,
                    "x".join(map(str, env.image_shape)), ",".join(map(str, env.contexts)),
                    omp_threads(), env.num_classes, s.batch_size, s.epochs, s.warmup_epochs,
                    " / ".join("%d %s" % (env.data[split].num_records, split)
                               for split in splits))

    def summary(self, history):
        last = history[-1] if history else {}
        return {"arch": os.path.join(self.env.out, "arch.json"), "val_acc": last.get("val_acc")}
