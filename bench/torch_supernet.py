"""The same FBNet supernet in PyTorch: the reference our step is measured against (runs in .venv-torch).

    .venv-torch/bin/python bench/torch_supernet.py --preset paper --image-shape 3,32,32 --json

Builds the supernet from the package's own description of the space (``decode_space``: the
same layers, candidates, channels and strides as ours) the way public PyTorch FBNet
supernets do — each searchable layer ``sum_i m_i * block_i(x)`` with ``m =
softmax((theta + g) / T)``, one Gumbel draw per batch — with the loss ``CE + alpha *
log(1 + LAT)^beta`` on a table of ones, and times the weight step (SGD, momentum 0.9) and
the theta step (Adam) on one random batch, as ``bench_supernet.py`` times ours. Threads:
PyTorch's own default unless ``--threads`` is given. Prints samples/s (the search loop's
definition, ``StepClock``, as ours) and the process's peak resident memory.

With ``--train-rec``/``--theta-rec`` it trains on a ``.rec``'s images instead, as our
search loop does (``bench/bench_vs_torch.py --data rec``): an epoch of weight steps, then
one of theta steps, each batch read through PyTorch's ``DataLoader`` with its own Gumbel
draw, data waits included, at OpenMP's own wait policy. Needs only ``torch`` and OpenCV
(requirements-torch.txt); the package is imported for its pure-Python space description
and record decoding (no MXNet).
"""
import argparse
import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench_supernet import spin_between_operators  # noqa: E402 (loads no MXNet)

# before torch loads, as ours before MXNet: a step timed alone spins between operators; a
# loop reading a .rec keeps the library's own policy, as our search loop does
if not any(a == "--train-rec" or a.startswith("--train-rec=") for a in sys.argv[1:]):
    spin_between_operators()

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from fbnet_symbol.data.reader import decode_image, normalise  # noqa: E402
from fbnet_symbol.data.recordio import check_recordio, read_record  # noqa: E402
from fbnet_symbol.space.spaces import decode_space  # noqa: E402
from fbnet_symbol.train.meter import StepClock  # noqa: E402


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class InvertedResidual(nn.Module):
    """The FBNet candidate: 1x1 (group) conv, ReLU, shuffle, kxk depthwise, ReLU, 1x1 (group)
    conv, shuffle; BN after each conv in the paper preset; residual when shapes match."""

    def __init__(self, layer, kernel, expansion, group, bn_inside):
        super().__init__()
        mid = layer.in_channels * expansion
        self.group, self.residual = group, layer.shapes_match

        def conv_bn(cin, cout, k, stride, groups):
            conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=not bn_inside)
            return [conv, nn.BatchNorm2d(cout)] if bn_inside else [conv]

        self.pw1 = nn.Sequential(*conv_bn(layer.in_channels, mid, 1, 1, group), nn.ReLU())
        self.dw = nn.Sequential(*conv_bn(mid, mid, kernel, layer.stride, mid), nn.ReLU())
        self.pw2 = nn.Sequential(*conv_bn(mid, layer.out_channels, 1, 1, group))

    def forward(self, x):
        y = self.pw1(x)
        if self.group > 1:
            y = channel_shuffle(y, self.group)
        y = self.pw2(self.dw(y))
        if self.group > 1:
            y = channel_shuffle(y, self.group)
        return y + x if self.residual else y


class Supernet(nn.Module):
    def __init__(self, layout, num_classes=10):
        super().__init__()
        preset, bn_inside = layout.preset, layout.preset.bn_inside_blocks
        stem = [nn.Conv2d(3, layout.stem_channels, 3, preset.stem_stride, 1,
                          bias=not bn_inside)]
        self.stem = nn.Sequential(*(stem + ([nn.BatchNorm2d(layout.stem_channels)]
                                            if bn_inside else []) + [nn.ReLU()]))
        self.prebn = nn.ModuleList(
            nn.Identity() if bn_inside else nn.BatchNorm2d(l.in_channels)
            for l in layout.layers)
        self.layers = nn.ModuleList()
        for layer in layout.layers:
            ops = nn.ModuleList()
            for name in layer.candidates:
                c = layout.space.candidate(name)
                ops.append(nn.Identity() if c.identity else InvertedResidual(
                    layer, c.params["kernel"], c.params["expansion"], c.params["group"],
                    bn_inside))
            self.layers.append(ops)
        self.theta = nn.ParameterList(nn.Parameter(torch.ones(len(l.candidates)))
                                      for l in layout.layers)
        last, k = layout.last_channels, preset.last_conv_kernel
        if bn_inside:
            self.tail = nn.Sequential(nn.Conv2d(layout.layers[-1].out_channels, last, k,
                                                padding=k // 2, bias=False),
                                      nn.BatchNorm2d(last), nn.ReLU())
        else:
            self.tail = nn.Sequential(nn.BatchNorm2d(layout.layers[-1].out_channels), nn.ReLU(),
                                      nn.Conv2d(layout.layers[-1].out_channels, last, k,
                                                padding=k // 2))
        dim = last
        self.embedding = nn.Identity()
        if preset.feature_dim:
            self.embedding, dim = nn.Linear(last, preset.feature_dim), preset.feature_dim
        self.fc = nn.Linear(dim, num_classes)
        self.register_buffer("lut", torch.ones(sum(len(l.candidates) for l in layout.layers)))

    def forward(self, x, noise, temperature):
        x = self.stem(x)
        latency, start = 0.0, 0
        for prebn, ops, theta in zip(self.prebn, self.layers, self.theta):
            m = F.softmax((theta + noise[start:start + len(ops)]) / temperature, dim=0)
            x = prebn(x)
            x = sum(w * op(x) for w, op in zip(m, ops))
            latency = latency + (m * self.lut[start:start + len(ops)]).sum()
            start += len(ops)
        x = self.tail(x).mean((2, 3))
        return self.fc(self.embedding(x)), latency


class RecordImages(torch.utils.data.Dataset):
    """A flat ``.rec``'s images as our reader gives them — the same records, decode, resize
    and ``(x - 127.5) / 127.5`` (``fbnet_symbol.data``: numpy and OpenCV, no MXNet) — one
    per item, for PyTorch's ``DataLoader``."""

    def __init__(self, rec, shape):
        self.info, self.height, self.width = check_recordio(rec), shape[1], shape[2]
        self.fd = None  # opened in the process that reads (a loader worker)

    def __len__(self):
        return self.info.num_records

    def __getitem__(self, i):
        if self.fd is None:
            self.fd = os.open(self.info.rec, os.O_RDONLY)
            self.size = os.fstat(self.fd).st_size
        label, payload = read_record(self.fd, int(self.info.offsets[i]), self.size,
                                     self.info.rec, i)
        image = torch.empty((1, 3, self.height, self.width))
        normalise(decode_image(payload, self.height, self.width)[None], image.numpy())
        return image[0], int(label[0])


def gumbel(size):
    return -torch.log(-torch.log(torch.rand(size).clamp(1e-10, 1 - 1e-10)))


def rec_batches(rec, shape, batch_size, workers, noise_size):
    """One epoch of ``rec`` through PyTorch's own loader (shuffled, ``workers`` processes
    decoding ahead), each batch with its own Gumbel draw, as the search loop feeds ours."""
    loader = torch.utils.data.DataLoader(RecordImages(rec, shape), batch_size=batch_size,
                                         shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    for x, y in loader:
        yield x, y, gumbel(noise_size)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--image-shape", default="3,32,32")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=5, help="timed steps per stage")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, help="default: PyTorch's own")
    p.add_argument("--train-rec", help="train on this .rec's images instead of one random "
                                       "batch: an epoch of weight steps (the theta steps on "
                                       "--theta-rec), data waits included, as our search loop")
    p.add_argument("--theta-rec")
    p.add_argument("--loader-workers", type=int, default=1,
                   help="DataLoader processes with --train-rec (default 1: a batch decoded "
                        "ahead, as our reader does)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if bool(args.train_rec) != bool(args.theta_rec):
        p.error("give --train-rec and --theta-rec together")
    args.image_shape = tuple(int(v) for v in args.image_shape.split(","))
    return args


def make_step(net):
    """One training step of ``net`` as our search does it: only ``trained`` gets gradients,
    the loss is read back."""
    def step(optimizer, trained, fixed, x, y, noise):
        for q in trained:  # as ours: the other group gets no gradient in a stage
            q.requires_grad_(True)
        for q in fixed:
            q.requires_grad_(False)
        optimizer.zero_grad(set_to_none=True)
        logits, latency = net(x, noise, 5.0)
        loss = F.cross_entropy(logits, y) + 0.2 * torch.log1p(latency) ** 0.6
        loss.backward()
        optimizer.step()
        return loss.item()  # the loop reads its loss
    return step


def stage_batches(args, stage, noise_size):
    """The batches a stage is timed on; warm-up steps come first, untimed."""
    if args.train_rec:  # the loop's count: its first step is its only warm-up
        rec = args.train_rec if stage == "weight" else args.theta_rec
        return [], rec_batches(rec, args.image_shape, args.batch_size, args.loader_workers,
                               noise_size)
    batch = (torch.rand((args.batch_size,) + args.image_shape) * 2 - 1,
             torch.randint(0, 10, (args.batch_size,)), gumbel(noise_size))
    return [batch] * args.warmup, [batch] * (1 + args.steps)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    layout = decode_space("fbnet", args.preset, args.image_shape, args.width_mult)
    torch.manual_seed(0)
    net = Supernet(layout).train()
    theta = list(net.theta.parameters())
    ids = {id(t) for t in theta}
    weights = [q for q in net.parameters() if id(q) not in ids]
    stages = (("weight", torch.optim.SGD(weights, lr=0.05, momentum=0.9, weight_decay=1e-4),
               weights, theta),
              ("theta", torch.optim.Adam(theta, lr=0.01, weight_decay=5e-4), theta, weights))
    step = make_step(net)
    result = {"framework": "pytorch %s" % torch.__version__, "preset": args.preset,
              "image_shape": list(args.image_shape), "batch_size": args.batch_size,
              "width_mult": args.width_mult, "threads": torch.get_num_threads(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
              "data": "rec" if args.train_rec else "random"}
    for stage, optimizer, trained, fixed in stages:
        warmup, timed = stage_batches(args, stage, int(net.lut.numel()))
        for batch in warmup:
            step(optimizer, trained, fixed, *batch)
        clock = StepClock()  # ours times its steps with the same clock
        for batch in timed:  # the first stamp starts the clock; data waits fall in between
            step(optimizer, trained, fixed, *batch)
            clock.stamp(len(batch[1]))
        result["%s_samples_per_s" % stage] = clock.samples_per_s()
        result["%s_step_ms" % stage] = 1000 * args.batch_size / clock.samples_per_s()
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if args.json:
        print(json.dumps(result))
    else:
        print("PyTorch %s supernet, %s %s batch %d, %d threads, %s data: weight step %.1f "
              "samples/s, theta step %.1f samples/s, peak RSS %.0f MiB" % (
                  torch.__version__, args.preset, "x".join(map(str, args.image_shape)),
                  args.batch_size, result["threads"], result["data"],
                  result["weight_samples_per_s"], result["theta_samples_per_s"],
                  result["peak_rss_mib"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
