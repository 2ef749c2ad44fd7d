"""The public entry point of a run: settings in, a search or a fixed-architecture training out.

    from fbnet_symbol.search import SearchConfig, SearchRun
    summary = SearchRun(SearchConfig(train_rec="train.rec", theta_rec="theta.rec")).run()

:class:`SearchRun` resolves the settings (:func:`~fbnet_symbol.settings.resolve`), sets up
devices, kvstore and data (:class:`~fbnet_symbol.run_env.RunEnv`), picks the task — the
FBNet search (:class:`~fbnet_symbol.search_task.SearchTask`), or with ``arch`` the
training of that architecture (:class:`~fbnet_symbol.train_task.TrainTask`) — and hands it
to the :class:`~fbnet_symbol.trainer.Trainer` with the evaluations of the run.
"""
from .data import embedded_digits
from .evaluation import top1_evaluation, verification_evaluation
from .run_env import RunEnv
from .search_task import SearchTask
from .settings import Settings, resolve
from .threads import choose_threads, use_threads
from .train_task import TrainTask
from .trainer import StopRequested, Trainer  # noqa: F401 (StopRequested: part of the API)

SearchConfig = Settings  # the name this API had first


class SearchRun:
    """One run. ``settings`` is not changed; :attr:`settings` holds the resolved copy."""

    def __init__(self, settings, evaluations=None):
        self.settings = resolve(settings, embedded_digits)
        use_threads(choose_threads(self.settings.threads)[0])  # warns if MXNet keeps another
        self.env = RunEnv(self.settings)
        self.task = (TrainTask if self.settings.fixed else SearchTask)(self.env)
        if evaluations is None:
            evaluations = [top1_evaluation("val")]
            if self.settings.verify and self.env.writer:  # evaluations run on rank 0
                evaluations.append(verification_evaluation(
                    self.settings.verify, self.env.image_shape, self.env.progress))
        self.trainer = Trainer(self.env, self.task, evaluations)

    def run(self, stop_after_steps=None):
        """Train to the last epoch; returns a summary dict (see :meth:`Trainer.run`)."""
        return self.trainer.run(stop_after_steps)

    # ------------------------------------------------------------ for scripts and tests
    def params(self):
        """Fresh (arg, aux) parameter dicts of the network."""
        return self.trainer.params()

    def theta(self):
        """{layer: θ vector} of a search."""
        return self.task.net.split_theta(self.params()[0])

    @property
    def net(self):
        return self.task.net

    @property
    def layout(self):
        return self.task.net.layout

    @property
    def table(self):
        return getattr(self.task, "table", None)

    @property
    def rank(self):
        return self.env.rank

    @property
    def global_step(self):
        return self.trainer.state.global_step

    @property
    def last_checkpoint(self):
        return self.trainer.state.last_checkpoint
