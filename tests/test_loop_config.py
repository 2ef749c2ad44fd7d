"""The loop told only what it needs: a trainer and a run environment built from small configs by hand, no Settings."""
import json

from fbnet_symbol.space.architecture import load_architecture
from fbnet_symbol.train.run_env import EnvConfig, RunEnv
from fbnet_symbol.train.schedules import ScheduleConfig, make_scheduler
from fbnet_symbol.train.task import TrainReport, TrainTask
from fbnet_symbol.train.trainer import LoopConfig, Trainer
from tests.conftest import make_rec


def test_a_network_trains_from_configs_written_by_hand(tmp_path):
    env = RunEnv(EnvConfig(out=str(tmp_path / "run"), train_rec=make_rec(tmp_path / "t", 16),
                           image_shape=(3, 8, 8), batch_size=8, seed=0, progress=False),
                 splits=("train",))
    arch = load_architecture("fbnet_b").replace(preset="seed", width_mult=0.25)
    task = TrainTask(arch, env)
    loop = LoopConfig(epochs=2, batch_size=8, seed=0, log_frequence=0, save_frequence=0,
                      schedule=ScheduleConfig(kind="cosine", lr=0.01, epochs=2),
                      record={"what": "by hand"})
    summary = Trainer(loop, env, task, callbacks=[TrainReport(task, env.out)]).run()
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert summary["epoch"] == 2 and [r["epoch"] for r in history] == [0, 1]
    assert all(r["weight_ce"] > 0 for r in history)
    assert json.loads((tmp_path / "run" / "args.json").read_text())["what"] == "by hand"


def test_a_schedule_from_its_config():
    cosine = make_scheduler(ScheduleConfig(kind="cosine", lr=0.1, epochs=2, lr_floor=0.0), 10)
    assert cosine(0) == 0.1 and abs(cosine(10) - 0.05) < 1e-12 and cosine(20) == 0.0
    steps = make_scheduler(ScheduleConfig(kind="step", lr=0.1, epochs=3, lr_step_epochs="1,2"),
                           10)
    assert [round(steps(n), 6) for n in (0, 10, 20)] == [0.1, 0.01, 0.001]
