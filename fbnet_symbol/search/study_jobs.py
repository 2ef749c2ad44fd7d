"""The study's runs: each search or training in its folder, skipped once finished, resumed
when stopped, several at a time in worker processes that share the cores."""
import json
import logging
import os
from dataclasses import replace

from ..errors import FBNetError
from ..fileio import atomic_write_json

def _done(folder):
    path = os.path.join(folder, "result.json")
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return None


def _search_result(run, summary):
    from ..space.architecture import architecture_from_settings
    last = os.path.join(summary["theta"], "epoch_%d_theta.txt" % (summary["epochs"] - 1))
    return dict(blocks=summary["blocks"], theta=last,
                lut=os.path.join(run.env.out, "lut.json"),
                expected_latency_ms=summary["expected_latency_ms"], entropy=summary["entropy"],
                arch=architecture_from_settings(run.settings, summary["blocks"],
                                                "searched").to_dict())


def _train_result(run, summary):
    """The last epoch's scores: top-1 (``val_acc``) and each pair set's verification."""
    with open(os.path.join(run.env.out, "history.json")) as f:
        history = json.load(f)
    return {"epochs": len(history), "scores": {
        k: v for k, v in history[-1].items() if k.endswith("_acc") and
        not k.startswith(("weight_", "theta_"))}}


def score(result, metric):
    """The ``metric`` of a finished training's result."""
    if metric not in result["scores"]:
        raise FBNetError("the trainings report %s, not %s; pass --metric with one of them"
                         % (", ".join(sorted(result["scores"])), metric))
    return result["scores"][metric]


def run_job(job):
    """One search or training ``(settings, folder, kind)`` unless it already finished there;
    its log goes to ``folder/study-run.log``. Module-level: worker processes run it."""
    settings, folder, kind = job
    found = _done(folder)
    if found is not None:
        return found
    from .run import SearchRun
    saved = os.path.join(folder, "checkpoints")
    if os.path.isdir(saved) and any(f.endswith(".params") for f in os.listdir(saved)):
        settings = replace(settings, load_model_path=folder)  # stopped earlier: resume it
    os.makedirs(folder, exist_ok=True)
    handler = logging.FileHandler(os.path.join(folder, "study-run.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        run = SearchRun(settings)
        summary = run.run()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    result = (_search_result if kind == "search" else _train_result)(run, summary)
    atomic_write_json(os.path.join(folder, "result.json"), result)
    return result


def _start_worker(threads):
    from ..threads import use_threads
    use_threads(threads)  # before MXNet loads in this process
    logging.getLogger().setLevel(logging.INFO)


def run_jobs(jobs, workers, bar=None):
    """The results of ``jobs`` (see :func:`run_job`), ``workers`` processes at a time, each
    with its share of the cores; in this process when ``workers`` is 1."""
    results = [_done(folder) for _, folder, _ in jobs]
    todo = [i for i, r in enumerate(results) if r is None]
    if bar is not None:
        bar.update(len(jobs) - len(todo))
    if workers <= 1 or len(todo) <= 1:
        for i in todo:
            results[i] = run_job(jobs[i])
            if bar is not None:
                bar.update()
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from ..threads import cores
    threads = max(1, cores() // workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(run_job, jobs[i]): i for i in todo}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if bar is not None:
                    bar.update()
        except BaseException:
            # Ctrl-C, SIGTERM or a failed run: the runs under way get SIGTERM, so each
            # writes a checkpoint of its step (a second study run resumes them), no new
            # run starts, and this process waits for them to end before it stops
            for future in futures:
                future.cancel()
            for process in list(pool._processes.values()):
                process.terminate()
            raise
    return results
