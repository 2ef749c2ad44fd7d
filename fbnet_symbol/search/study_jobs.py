"""The study's runs: each search or training in its folder, skipped once finished, resumed
when stopped, several at a time in worker processes that share the cores."""
import json
import logging
import os
from dataclasses import replace

from ..errors import FBNetError, RunInterrupted
from ..fileio import atomic_write_json

def _done(folder):
    path = os.path.join(folder, "result.json")
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return None


def _search_result(run, summary):
    from ..space.architecture import architecture_described
    last = os.path.join(summary["theta"], "epoch_%d_theta.txt" % (summary["epochs"] - 1))
    return dict(blocks=summary["blocks"], theta=last,
                lut=os.path.join(run.env.out, "lut.json"),
                expected_latency_ms=summary["expected_latency_ms"], entropy=summary["entropy"],
                arch=architecture_described(run.settings, summary["blocks"],
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


def _watch_parent(parent):
    """SIGTERM this run (a checkpoint, then the end) if the study that started it is gone."""
    import signal
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(2)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=watch, daemon=True).start()


def _worker(job, threads, parent, conn):
    """A worker process: one run, its result or its error sent back on its own pipe (no
    lock shared with other workers: a worker stopped while holding one hung the study)."""
    os.setpgrp()  # Ctrl-C at the terminal reaches the study only, which forwards one SIGTERM
    from ..threads import use_threads
    use_threads(threads)  # before MXNet loads in this process
    logging.getLogger().setLevel(logging.INFO)
    _watch_parent(parent)
    try:
        message = ("result", run_job(job))
    except BaseException as e:  # sent as text: not every exception pickles
        if not isinstance(e, (FBNetError, KeyboardInterrupt)):  # a bug: keep its traceback
            import traceback
            os.makedirs(job[1], exist_ok=True)
            with open(os.path.join(job[1], "study-run.log"), "a") as log:
                log.write(traceback.format_exc())
        message = ("error", type(e).__name__, str(e) or type(e).__name__,
                   getattr(e, "exit_code", None))
    conn.send(message)
    conn.close()


class _Workers:
    """Runs under way, one spawned process each, at most ``size`` at a time."""

    def __init__(self, size, threads):
        import multiprocessing
        self.context = multiprocessing.get_context("spawn")
        self.size, self.threads = size, threads
        self.running = {}  # pipe -> (process, job index, folder)

    def start(self, index, job):
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_worker, daemon=False,
                                       args=(job, self.threads, os.getpid(), send))
        process.start()
        send.close()  # this end lives in the worker: its exit reads as end-of-file here
        self.running[receive] = (process, index, job[1])

    def next_finished(self):
        """``(job index, result)`` of a run that ended; a failed run raises its error."""
        from multiprocessing.connection import wait
        receive = wait(list(self.running))[0]
        process, index, folder = self.running.pop(receive)
        try:
            message = receive.recv()
        except EOFError:  # the worker died before it could answer
            message = None
        receive.close()
        process.join()
        if message is None:
            message = ("error", "exit code %s" % process.exitcode, "no result", None)
        if message[0] == "result":
            return index, message[1]
        _, kind, text, exit_code = message
        if kind == "RunInterrupted":
            raise RunInterrupted(text, exit_code)
        raise FBNetError("the run in %s failed (%s): %s; its log: %s"
                         % (folder, kind, text, os.path.join(folder, "study-run.log")))

    def stop(self):
        """SIGTERM every run under way (each checkpoints its step, so a second study run
        resumes it) and wait for them; a second signal here stops them at once."""
        for process, _, _ in self.running.values():
            process.terminate()
        try:
            for receive, (process, _, folder) in list(self.running.items()):
                process.join()
                if receive.poll():
                    message = receive.recv()
                    if message[0] == "error":
                        logging.getLogger(__name__).info("%s: %s", folder, message[2])
        except BaseException:
            for process, _, _ in self.running.values():
                process.terminate()  # asked twice: the runs stop at once
            raise


class _Tally:
    """Finished runs on the bar and in the log (a study's log shows its progress even
    without a terminal)."""

    def __init__(self, total, skipped, bar):
        self.total, self.done, self.bar = total, skipped, bar
        if bar is not None:
            bar.update(skipped)

    def add(self, folder):
        self.done += 1
        if self.bar is not None:
            self.bar.update()
        logging.getLogger(__name__).info("finished %s (%d of %d)", folder, self.done,
                                         self.total)


def run_jobs(jobs, workers, bar=None):
    """The results of ``jobs`` (see :func:`run_job`), ``workers`` processes at a time, each
    with its share of the cores; in this process when ``workers`` is 1."""
    results = [_done(folder) for _, folder, _ in jobs]
    todo = [i for i, r in enumerate(results) if r is None]
    finished = _Tally(len(jobs), len(jobs) - len(todo), bar)
    if workers <= 1 or len(todo) <= 1:
        for i in todo:
            results[i] = run_job(jobs[i])
            finished.add(jobs[i][1])
        return results
    from ..threads import cores
    pool = _Workers(workers, max(1, cores() // workers))
    try:
        while todo or pool.running:
            while todo and len(pool.running) < pool.size:
                i = todo.pop(0)
                pool.start(i, jobs[i])
            i, results[i] = pool.next_finished()
            finished.add(jobs[i][1])
    except BaseException:
        # Ctrl-C, SIGTERM or a failed run: no new run starts, the runs under way checkpoint
        # their step and end, then this process stops
        pool.stop()
        raise
    return results
