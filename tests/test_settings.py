"""One source of settings: the parser is generated from Settings; presets fill what is unset."""
import dataclasses

import pytest

from fbnet_symbol.errors import FBNetError
from fbnet_symbol.settings import (RESUME_KEYS, RUN_PRESETS, Settings, build_parser, from_args,
                                   resolve)

EMBEDDED = {"train": "/cache/train.rec", "theta": "/cache/theta.rec", "val": "/cache/val.rec"}


@pytest.fixture
def embedded(monkeypatch):
    """resolve_run with the embedded digits' paths faked (nothing is packed)."""
    import fbnet_symbol.search.run as run_module
    monkeypatch.setattr(run_module, "embedded_digits", lambda: dict(EMBEDDED))
    return run_module.resolve_run


def test_parser_has_one_flag_per_cli_field_with_its_default():
    parser = build_parser()
    dests = {a.dest: a for a in parser._actions if a.dest != "help"}
    cli = [f for f in dataclasses.fields(Settings) if f.metadata["cli"]]
    assert sorted(dests) == sorted(f.name for f in cli)
    for f in cli:
        assert dests[f.name].default == f.default, f.name
    # parsing nothing gives the dataclass defaults
    assert from_args(parser.parse_args([])) == Settings()


def test_the_seeds_command_line_maps_onto_settings():
    args = build_parser().parse_args("--gpu 0,1,2,3 --log-frequence 50 --model-type softmax "
                                     "--batch-size 32 --load-model-path ./model".split())
    s = from_args(args)
    assert (s.gpu, s.log_frequence, s.model_type, s.batch_size, s.load_model_path) == \
        ("0,1,2,3", 50, "softmax", 32, "./model")
    s = from_args(build_parser().parse_args(["--gpus", "1", "--gumbel-noise", "sample",
                                             "--no-progress", "--image-shape", "3,32,32"]))
    assert (s.gpu, s.noise, s.progress, s.image_shape) == ("1", "sample", False, (3, 32, 32))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--image-shape", "3,32"])


def test_the_embedded_demo_searches_with_the_unit_free_loss_real_data_with_the_seeds():
    demo = resolve(Settings())
    assert (demo.loss_form, demo.alpha, demo.theta_lr) == ("relative", 1.0, 0.1)
    real = resolve(Settings(train_rec="a.rec", theta_rec="b.rec"))
    assert (real.loss_form, real.alpha, real.theta_lr) == ("add", 0.2, 0.01)
    given = resolve(Settings(loss_form="mul", alpha=0.5))
    assert (given.loss_form, given.alpha, given.theta_lr) == ("mul", 0.5, 0.1)


def test_resume_keys_are_the_settings_that_shape_a_run():
    assert set(RESUME_KEYS) == {
        "space", "preset", "image_shape", "width_mult", "model_type", "feature_dim", "noise",
        "loss_form", "alpha", "beta", "batch_size", "seed", "warmup_epochs", "lr",
        "lr_scheduler", "temperature", "temperature_decay"}


@pytest.mark.parametrize("kw,preset", [
    ({"train_rec": "a.rec", "theta_rec": "b.rec"}, "search"),
    ({}, "search-embedded"),
    ({"train_rec": "a.rec", "theta_rec": "b.rec", "arch": "fbnet_b"}, "train"),
    ({"arch": "fbnet_b"}, "train-embedded"),
])
def test_resolve_fills_unset_values_from_one_named_preset(kw, preset, embedded):
    given = Settings(**kw)
    s = resolve(given)
    assert s.train_rec == given.train_rec  # resolve reads no data folder
    s = embedded(given)
    assert s.run_preset == preset and given.run_preset is None  # the caller's is untouched
    for key, value in RUN_PRESETS[preset].items():
        assert getattr(s, key) == value, key
    assert s.image_shape is not None and s.epochs >= 1
    if preset.endswith("embedded"):
        assert (s.train_rec, s.theta_rec, s.val_rec) == (EMBEDDED["train"],
                                                         EMBEDDED["theta"], EMBEDDED["val"])
    # explicit values win over every preset
    s = resolve(dataclasses.replace(given, epochs=3, lr=0.5, image_shape=(3, 8, 8)))
    assert (s.epochs, s.lr, s.image_shape) == (3, 0.5, (3, 8, 8))


def test_arch_decides_space_preset_width_and_head_unless_given():
    arch = '{"space": "fbnet_se", "preset": "paper", "blocks": %s, "width_mult": 0.25, ' \
           '"head": {"type": "arcface"}}' % str(["basic"] * 16).replace("'", '"')
    s = resolve(Settings(arch=arch))
    assert (s.space, s.preset, s.width_mult, s.model_type) == ("fbnet_se", "paper", 0.25,
                                                               "arcface")
    assert s.image_shape == (3, 16, 16) and s.fixed
    s = resolve(Settings(arch=arch, preset="seed", width_mult=0.5, model_type="softmax"))
    assert (s.preset, s.width_mult, s.model_type) == ("seed", 0.5, "softmax")
    assert s.arch.preset == "seed" and s.arch.head.type == "softmax"


def test_real_data_gets_the_presets_image_shape_and_bad_values_one_line():
    s = resolve(Settings(train_rec="a.rec", theta_rec="b.rec", preset="paper"))
    assert s.image_shape == (3, 224, 224) and s.model_type == "softmax"
    with pytest.raises(FBNetError, match="give both --train-rec"):
        resolve(Settings(train_rec="a.rec"))
    with pytest.raises(FBNetError, match="--epochs must be >= 1"):
        resolve(Settings(epochs=0))


def test_every_command_takes_its_flags_from_the_settings_fields():
    import block_speed_test
    import sample
    from fbnet_symbol.settings import add_settings, search_default

    fields = {f.name: f for f in dataclasses.fields(Settings)}
    bst = block_speed_test.parse_args([])
    # the same field under another flag, and a None default filled from the search preset
    assert bst.lut_batch_size == fields["lut_batch_size"].default == 1
    assert (bst.preset, bst.model_type, bst.width_mult) == (
        search_default("preset"), search_default("model_type"), search_default("width_mult"))
    assert block_speed_test.parse_args(["--batch-size", "4", "--image-shape", "3,8,8"]) \
        .image_shape == (3, 8, 8)  # the field's own parsing
    smp = sample.parse_args(["--theta", "t.txt"])
    assert (smp.space, smp.preset, smp.seed) == (None, None, 0)  # unset: the search's own
    # a command's parser and test.py's agree on a shared field's choices and help
    p = argparse_parser()
    add_settings(p, ["loss_form"], title="x", defaults={"loss_form": "relative"})
    action = next(a for a in p._actions if a.dest == "loss_form")
    test_py = next(a for a in build_parser()._actions if a.dest == "loss_form")
    assert action.choices == test_py.choices and action.default == "relative"
    assert action.help.startswith(fields["loss_form"].metadata["help"])
    with pytest.raises(SystemExit):
        block_speed_test.parse_args(["--space", "nope"])


def argparse_parser():
    from fbnet_symbol.cli import ArgumentParser
    return ArgumentParser()


def test_a_short_search_keeps_the_presets_proportions_and_theta_trains():
    real = dict(train_rec="a.rec", theta_rec="b.rec")
    full = resolve(Settings(**real))
    assert (full.epochs, full.warmup_epochs, full.temperature_decay, full.theta_lr) == \
        (90, 10, 0.956, 0.01)
    half = resolve(Settings(epochs=45, **real))
    # warm-up 10/90 of the epochs; theta 80/40 x faster; the temperature's decay per epoch
    # unchanged (annealed within a few epochs, the supernet stopped learning)
    assert half.warmup_epochs == 5 and half.temperature_decay == 0.956
    assert half.theta_lr == pytest.approx(0.02)
    short = resolve(Settings(epochs=8, **real))
    assert short.warmup_epochs == 1 and short.theta_lr == pytest.approx(0.1)  # capped
    assert short.temperature_decay == 0.956
    given = resolve(Settings(epochs=8, warmup_epochs=3, theta_lr=0.05, temperature_decay=0.9,
                             **real))
    assert (given.warmup_epochs, given.theta_lr, given.temperature_decay) == (3, 0.05, 0.9)
    assert resolve(Settings(epochs=1, **real)).warmup_epochs == 0
    # a budget in which theta would never train is refused, naming the fix
    with pytest.raises(FBNetError, match="theta would never be trained.*--warmup-epochs"):
        resolve(Settings(epochs=8, warmup_epochs=8, **real))
    # the demonstration and a fixed training keep their own values
    demo = resolve(Settings())
    assert (demo.epochs, demo.warmup_epochs, demo.temperature_decay) == (6, 2, 0.956)
    fixed = resolve(Settings(arch="fbnet_a", epochs=3, **real))
    assert fixed.warmup_epochs == 0
