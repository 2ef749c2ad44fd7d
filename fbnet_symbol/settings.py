"""Every setting of a run, defined once: field, default, help, flag, and whether a resume must match.

:class:`Settings` is the single source. ``test.py``'s parser is generated from it
(:func:`build_parser`), the library reads it, checkpoints record it, and a resumed or
distributed run compares the fields marked ``resume``. A setting whose default depends on
the kind of run (``None`` below) is filled by :func:`resolve` from one of the named
:data:`RUN_PRESETS`; :func:`resolve` returns a new object and never changes its argument.
"""
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Optional

from .cli import ArgumentParser, as_argument
from .errors import FBNetError
from .space.heads import HEAD_DEFAULTS
from .space.spaces import PRESETS, SPACES, get_preset, parse_image_shape
from .threads import THREADS_HELP, parse_threads

GROUPS = {"network": "space and network", "data": "devices and data", "search": "search",
          "optimizer": "weight optimizer (SGD)", "run": "checkpoints and logging"}


def setting(default=None, help="", group="search", flags=None, resume=False, cli=True,
            **argparse_kw):
    """A field of :class:`Settings` with what the parser and the resume check need."""
    meta = dict(help=help, group=group, flags=flags, resume=resume, cli=cli,
                argparse=argparse_kw)
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """A search or a fixed-architecture training; ``None``: decided by :func:`resolve`."""

    # ---- space and network
    space: str = setting("fbnet", "search space", "network", resume=True,
                         choices=sorted(SPACES))
    preset: Optional[str] = setting(None, "seed: what the seed changed; paper: the paper's "
                                    "(with --arch: the architecture's)",
                                    "network", resume=True, choices=sorted(PRESETS))
    image_shape: Optional[tuple] = setting(
        None, "C,H,W (on your data, unset: the --preset's: seed 3,108,108, paper 3,224,224)",
        "network",
        resume=True, type=as_argument(parse_image_shape))
    width_mult: Optional[float] = setting(
        None, "channel multiplier; with --arch: the architecture's", "network", resume=True,
        type=float)
    model_type: Optional[str] = setting(
        None, "classifier head (with --arch: the architecture's)",
        "network", resume=True, choices=sorted(HEAD_DEFAULTS))
    arch: Optional[object] = setting(
        None, "train this architecture from scratch instead of searching: a shipped name "
        "(fbnet_a/b/c), an architecture .json or JSON", "network")
    feature_dim: Optional[int] = setting(
        None, "embedding size before the head (default: the preset's; 0: none)", "network",
        resume=True, type=int)
    margin_s: Optional[float] = setting(None, "scale of amsoftmax/arcface (30 / 64)",
                                        "network", type=float)
    margin_m: Optional[float] = setting(None, "margin of amsoftmax/arcface (0.3 / 0.5)",
                                        "network", type=float)
    # ---- devices and data
    gpu: Optional[str] = setting(
        None, "devices: 0,1,2,3 for GPUs, cpu or cpu:0,cpu:1 for CPU contexts (default: GPU "
        "0 if any, else the CPU)", "data", flags=("--gpu", "--gpus"))
    batch_size: int = setting(32, "global batch, split over devices (per worker with "
                              "dist_sync)", "data", resume=True, type=int)
    train_rec: Optional[str] = setting(
        None, "weight split (.rec with .idx beside it); with --theta-rec. Neither: the "
        "embedded digits data set", "data")
    theta_rec: Optional[str] = setting(None, "theta split (.rec)", "data")
    val_rec: Optional[str] = setting(None, "held-out split: top-1 each epoch", "data")
    data_dir: Optional[str] = setting(
        None, "InsightFace's data folder (train.rec/.idx, property, *.bin): trains on "
        "train.rec (theta: every 5th image of each identity, read in place), verifies on its "
        ".bin pair sets; instead of --train-rec/--theta-rec", "data")
    verify: Optional[object] = setting(
        None, "pair sets (.bin) scored at every epoch end, comma-separated (lfw.bin,cfp_fp.bin; "
        "names are looked up in --data-dir); default with --data-dir: all its .bin files",
        "data")
    rand_mirror: bool = setting(False, "random horizontal flips", "data", action="store_true")
    threads: object = setting("auto", THREADS_HELP, "data", type=as_argument(parse_threads))
    kv_store: str = setting(
        "local", "local or device (one machine); dist_sync: several machines, started with "
        "launch.py (--batch-size is then per worker)", "data")
    # ---- search
    epochs: Optional[int] = setting(None, "passes over the weight split", type=int)
    warmup_epochs: Optional[int] = setting(None, "first epochs that train the weights only",
                                           resume=True, type=int)
    lut: Optional[str] = setting(None, "latency table (.txt or .json); default: a cached "
                                 "table measured on the first device")
    lut_batch_size: int = setting(1, "batch size the latency table is for", type=int)
    lut_timing: str = setting("full", "how a search times the table it has to measure (no "
                              "--lut): full, or quick (few repeats: a rough table in seconds "
                              "for a smoke run, cached apart from full ones)",
                              choices=["full", "quick"])
    alpha: Optional[float] = setting(None, "weight of the latency term", resume=True,
                                     type=float)
    beta: float = setting(0.6, "exponent of the latency term", resume=True, type=float)
    loss_form: Optional[str] = setting(
        None, "add: CE + a*log(1+LAT)^b (seed); mul: CE * a*log(1+LAT)^b (paper); relative: "
        "CE + a*log(LAT/LAT_uniform), the same on every device (a: nats per e-fold latency)",
        resume=True, choices=["add", "mul", "relative"])
    noise: str = setting("batch", "one Gumbel draw per batch or per sample", resume=True,
                         flags=("--gumbel-noise",), choices=["batch", "sample"])
    theta_init: float = setting(1.0, "initial value of every theta entry", type=float)
    theta_lr: Optional[float] = setting(None, "Adam's learning rate for theta", type=float)
    theta_wd: float = setting(5e-4, "theta weight decay", type=float)
    temperature: float = setting(5.0, "initial Gumbel-softmax temperature", resume=True,
                                 type=float)
    temperature_decay: Optional[float] = setting(
        None, "per epoch (default: 0.956, the paper's, whatever the number of epochs)",
        resume=True, type=float)
    # ---- weight optimizer
    lr: Optional[float] = setting(
        None, "SGD learning rate (a single network, without the supernet's averaging over "
        "candidates, needs a smaller step)", "optimizer", resume=True, type=float)
    wd: float = setting(1e-4, "weight decay", "optimizer", type=float)
    momentum: float = setting(0.9, "SGD momentum", "optimizer", type=float)
    lr_scheduler: str = setting("cosine_grad", "the seed's cosine with linear rise, plain "
                                "cosine, or steps", "optimizer", resume=True,
                                choices=["cosine_grad", "cosine", "step"])
    cosine_decay_step: Optional[int] = setting(
        None, "first cosine period in updates (default: one epoch)", "optimizer", type=int)
    t_mul: float = setting(2.0, "cosine_grad: period multiplier after each restart",
                           "optimizer", type=float)
    m_mul: float = setting(0.9, "cosine_grad: peak multiplier after each restart",
                           "optimizer", type=float)
    lr_floor: float = setting(0.001, "lowest learning rate, as a fraction of --lr",
                              "optimizer", type=float)
    rise_region: int = setting(100, "updates of linear rise after each restart",
                               "optimizer", type=int)
    lr_step_epochs: Optional[str] = setting(None, "for --lr-scheduler step: 30,60",
                                            "optimizer")
    # ---- checkpoints and logging
    save_model_path: str = setting("./model", "output folder", "run")
    save_frequence: int = setting(2000, "also checkpoint every N batches (0: epoch ends "
                                  "only)", "run", type=int)
    load_model_path: Optional[str] = setting(
        None, "resume: a folder (newest good checkpoint) or a .params file", "run")
    keep_checkpoints: int = setting(3, "checkpoints kept in checkpoints/", "run", type=int)
    log_frequence: int = setting(50, "log every N batches", "run", type=int)
    seed: int = setting(0, "seed of initialisation, data order and Gumbel noise", "run",
                        resume=True, type=int)
    progress: bool = setting(True, "no progress bars", "run", flags=("--no-progress",),
                             action="store_false")
    # ---- not on the command line
    freeze_bn: bool = setting(False, "BN uses moving statistics (device-equivalence tests)",
                              cli=False)
    run_preset: Optional[str] = setting(None, "which RUN_PRESETS entry filled the defaults",
                                        cli=False)

    def to_dict(self):
        """JSON-ready: tuples as lists, an Architecture as its dict."""
        d = asdict(self)
        d["image_shape"] = list(self.image_shape) if self.image_shape else None
        if self.arch is not None and not isinstance(self.arch, (str, dict)):
            d["arch"] = self.arch.to_dict()
        return d

    def resume_view(self):
        """The settings a checkpoint records and a resume or another worker must match."""
        d = self.to_dict()
        return {k: d[k] for k in RESUME_KEYS}

    @property
    def fixed(self):
        """True when training one architecture rather than searching."""
        return self.arch is not None

    @property
    def embedded(self):
        return self.run_preset is not None and self.run_preset.endswith("embedded")


RESUME_KEYS = tuple(f.name for f in fields(Settings) if f.metadata["resume"])

# Defaults that depend on the kind of run: on the user's data a search follows the paper's
# schedule; a fixed architecture has no warm-up and a smaller step (no supernet averaging
# its branches). The embedded digits get a demonstration that shows a search in ~2-3
# minutes on 2 CPU cores (README): the unit-free loss form and a theta step 10x the paper's, so that P_theta moves in 36 theta steps (docs/design.md).
# A search's network defaults to the seed's preset and a softmax head; a fixed training
# takes both from its architecture.
_SEARCH = dict(alpha=0.2, loss_form="add", theta_lr=0.01,  # the seed's and the paper's
               temperature_decay=0.956)
_NETWORK = dict(preset="seed", model_type="softmax")
RUN_PRESETS = {
    "search": dict(_SEARCH, **_NETWORK, epochs=90, warmup_epochs=10, width_mult=1.0, lr=0.05),
    "search-embedded": dict(_NETWORK, epochs=6, warmup_epochs=2, width_mult=0.5, lr=0.05,
                            image_shape=(3, 16, 16), alpha=1.0, loss_form="relative",
                            theta_lr=0.1, temperature_decay=0.956),
    "train": dict(_SEARCH, epochs=90, warmup_epochs=0, lr=0.01),
    "train-embedded": dict(_SEARCH, epochs=10, warmup_epochs=0, lr=0.01,
                           image_shape=(3, 16, 16)),
}


def resolve(settings):
    """A copy of ``settings`` with every ``None`` default filled and ``--arch`` applied.

    The run preset is chosen by the kind of run: ``--arch`` or not, and whether data files
    are given (neither ``train_rec`` nor ``theta_rec``: the embedded digits, whose paths
    the run fills in). Nothing is read from disk but the architecture.
    """
    s = settings
    if bool(s.train_rec) != bool(s.theta_rec):
        raise FBNetError("give both --train-rec (weight split) and --theta-rec (theta split); "
                         "to split one file 80/20 run: python -m fbnet_symbol.data split "
                         "FILE.rec --out-a train --out-b theta")
    name = ("train" if s.fixed else "search") + ("" if s.train_rec else "-embedded")
    changes = {k: v for k, v in RUN_PRESETS[name].items() if getattr(s, k) is None}
    changes["run_preset"] = name
    if not s.fixed:
        changes.update(short_search(s, RUN_PRESETS[name]))
    if s.fixed:
        from .space.architecture import load_architecture
        arch = load_architecture(s.arch).overridden(s.preset, s.width_mult, s.model_type,
                                                    s.feature_dim, s.margin_s, s.margin_m)
        changes.update(arch=arch, space=arch.space, preset=arch.preset,
                       width_mult=arch.width_mult, model_type=arch.head.type)
    out = replace(s, **changes)
    shape = out.image_shape or get_preset(out.preset).image_shape
    out = replace(out, image_shape=tuple(parse_image_shape(shape)))
    if out.epochs < 1 or out.warmup_epochs < 0:
        raise FBNetError("--epochs must be >= 1 and --warmup-epochs >= 0")
    if not out.fixed and out.warmup_epochs >= out.epochs:
        raise FBNetError("--warmup-epochs %d >= --epochs %d: theta would never be trained; "
                         "give fewer warm-up epochs (e.g. --warmup-epochs %d) or more epochs"
                         % (out.warmup_epochs, out.epochs, max(0, out.epochs // 9)))
    return out


# Adam moves theta by about its learning rate per step, whatever the gradient's scale, so
# a search with fewer theta epochs needs a larger rate to move as far; capped at the rate
# the embedded demonstration shows working in 4 theta epochs (10x the paper's).
THETA_LR_CAP = 0.1


def short_search(s, preset):
    """The settings a search given fewer ``--epochs`` than its run preset takes, so that
    theta trains (each one only when not given): the warm-up the same share of the epochs
    (at most all but one), and theta's learning rate scaled by how many fewer theta epochs
    there are (up to :data:`THETA_LR_CAP`). The temperature keeps its per-epoch decay:
    annealed to the 90-epoch final temperature within a few epochs, the mixture turned
    one-hot before the supernet had learned and the supernet fell back to chance
    (docs/reference.md: The study)."""
    full = preset["epochs"]
    if s.epochs is None or not 1 <= s.epochs < full:  # < 1 is refused by resolve
        return {}
    out = {}
    warmup = s.warmup_epochs
    if warmup is None:
        warmup = out["warmup_epochs"] = min(s.epochs - 1, int(round(
            preset["warmup_epochs"] * s.epochs / float(full))))
    if s.theta_lr is None:
        gain = (full - preset["warmup_epochs"]) / float(max(1, s.epochs - warmup))
        out["theta_lr"] = max(preset["theta_lr"], min(THETA_LR_CAP, preset["theta_lr"] * gain))
    return out


def search_default(name):
    """The value a search on the user's data takes for ``name`` when it is not given."""
    value = next(f.default for f in fields(Settings) if f.name == name)
    return RUN_PRESETS["search"].get(name, value) if value is None else value


# ---------------------------------------------------------------- the command line

def _preset_defaults(name):
    """`` (unset: search 90, search-embedded 6, ...)`` for a setting the run presets fill."""
    values = ["%s %s" % (preset, ",".join(map(str, v)) if isinstance(v, tuple) else v)
              for preset, values in RUN_PRESETS.items() for key, v in values.items()
              if key == name]
    return " (unset: %s)" % "; ".join(values) if values else ""


def add_settings(parser, names, title=None, preset=None, defaults=None, flags=None,
                 helps=None):
    """Add the flags of the :class:`Settings` fields ``names`` to ``parser``: every command
    builds its flags from the same fields (help, type, choices, default), as MXNet's
    ``fit.add_fit_args`` shares its arguments.

    ``title``: one argument group for them all, returned so that the command adds its own
    flags to it (default: each field's own group).
    ``preset``: a :data:`RUN_PRESETS` name whose values replace ``None`` defaults, for a
    command that needs a value where a run decides it later (``search``: the seed preset,
    softmax, width 1). ``defaults``, ``flags``, ``helps``: ``{field: value}`` changes of
    one command (e.g. ``block_speed_test.py --batch-size`` is ``lut_batch_size``).
    """
    defaults, flags, helps = defaults or {}, flags or {}, helps or {}
    by_name = {f.name: f for f in fields(Settings)}
    group = parser.add_argument_group(title) if title else None
    groups = {}
    for name in names:
        f, m = by_name[name], by_name[name].metadata
        kw = dict(m["argparse"], dest=name)
        kw["help"] = helps.get(name, m["help"]) + ("" if preset or name in defaults
                                                   else _preset_defaults(name))
        if name in defaults:
            kw["default"] = defaults[name]
        elif f.default is not None and f.default is not MISSING:
            kw["default"] = f.default
        elif preset and name in RUN_PRESETS[preset]:
            value = RUN_PRESETS[preset][name]
            kw["default"] = ",".join(map(str, value)) if isinstance(value, tuple) else value
        target = group or groups.setdefault(m["group"], parser.add_argument_group(
            GROUPS[m["group"]]))
        target.add_argument(*(flags.get(name) or m["flags"] or
                              ("--" + name.replace("_", "-"),)), **kw)
    return group  # the titled group, for the command's own flags (None without a title)


def build_parser(parser_class=None, **kw):
    """``test.py``'s parser: one flag per CLI field of :class:`Settings`, in groups."""
    p = (parser_class or ArgumentParser)(**kw)
    add_settings(p, [f.name for f in fields(Settings) if f.metadata["cli"]])
    return p


def from_args(args, preset=None):
    """Settings from parsed arguments: every field the parser has (by its ``dest``); with
    ``preset``, a :data:`RUN_PRESETS` name, the fields still ``None`` take its values."""
    given = {f.name: getattr(args, f.name) for f in fields(Settings) if hasattr(args, f.name)}
    s = Settings(**given)
    if preset is None:
        return s
    return replace(s, **{k: v for k, v in RUN_PRESETS[preset].items() if getattr(s, k) is None})
