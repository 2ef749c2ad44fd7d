"""What a phase of the training loop measures as it goes: its mean loss and top-1, the loop's
own throughput, and the lines the progress bar and the log show."""
import time

now = time.perf_counter  # the clock of every throughput figure (a test replaces it)


class StepClock:
    """Throughput as the search loop defines it, and the benchmarks with it (ours and the
    PyTorch reference): each step is stamped once it is done as the loop does it (outputs
    read, update issued); the figure counts the samples of every step after the first, over
    the time from the first stamp to the last — warm-up excluded, whatever happened between
    steps (reading data, logging, the previous update) included. Imports no MXNet."""

    def __init__(self):
        self.stamps = []  # (time, samples) at the end of each step

    def stamp(self, samples):
        self.stamps.append((now(), samples))

    def seconds(self):
        return self.stamps[-1][0] - self.stamps[0][0] if len(self.stamps) > 1 else 0.0

    def timed_samples(self):
        return sum(samples for _, samples in self.stamps[1:])

    def samples_per_s(self):
        return self.timed_samples() / self.seconds() if self.seconds() > 0 else 0.0


class PhaseMeter:
    """A phase's running figures: mean CE, top-1 and the task's averaged outputs, the loop's
    own throughput (from the end of the first step: warm-up excluded, waiting for data
    included), and what the bar and the log show."""

    def __init__(self, extra, status):
        self.extra, self.status = extra, status  # {name: output}, {name: value} of the epoch
        self.read = ["logits", "ce"] + [extra[k] for k in extra]  # the outputs, in order
        self.sums = dict({"ce": 0.0, "correct": 0, "n": 0}, **{k: 0.0 for k in extra})
        self.clock = StepClock()
        self.tick, self.tick_samples = time.time(), 0

    def add(self, outputs, label, valid):
        logits, ce, values = outputs[0], outputs[1], outputs[2:]
        sums = self.sums
        self.clock.stamp(valid)
        sums["ce"] += float(ce.sum())
        sums["correct"] += int((logits.argmax(axis=1) == label).sum())
        sums["n"] += valid
        for key, v in zip(self.extra, values):
            sums[key] += float(v.sum())
        self.tick_samples += valid

    def _means(self):
        n = max(self.sums["n"], 1)
        return n, " ".join("%s %.3f" % (key, self.sums[key] / n) for key in self.extra)

    def postfix(self, lr):
        n, shown = self._means()
        return "loss %.3f acc %.3f %s lr %.2g %s" % (
            self.sums["ce"] / n, self.sums["correct"] / n, shown, lr,
            " ".join("%s %.2f" % kv for kv in self.status.items()))

    def log_line(self, lr):
        """The figures since the start of the phase and the speed since the last line."""
        n, shown = self._means()
        moment = time.time()
        line = "CE %.4f acc %.4f %s lr %.3g %s, %.1f samples/s" % (
            self.sums["ce"] / n, self.sums["correct"] / n, shown, lr,
            " ".join("%s %.3f" % kv for kv in self.status.items()),
            self.tick_samples / max(moment - self.tick, 1e-9))
        self.tick, self.tick_samples = moment, 0
        return line

    def result(self, phase, env):
        """The phase's record entries, summed over every worker."""
        sums = dict(self.sums, seconds=self.clock.seconds(), timed=self.clock.timed_samples())
        if env.collective.distributed:  # the logs of record speak for every worker's images
            keys = sorted(sums)
            sums = dict(zip(keys, env.collective.allreduce([sums[k] for k in keys],
                                                        "phase_sums").tolist()))
        n = max(sums["n"], 1)
        out = {"%s_ce" % phase: sums["ce"] / n, "%s_acc" % phase: sums["correct"] / n}
        out.update({"%s_%s" % (phase, key): sums[key] / n for key in self.extra})
        if sums["seconds"] > 0:  # images per second of all workers together
            out["%s_samples_per_s" % phase] = sums["timed"] * env.num_workers / sums["seconds"]
        return out
