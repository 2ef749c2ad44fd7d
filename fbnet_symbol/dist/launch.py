"""Start an MXNet parameter-server cluster and run a command on every worker.

    python launch.py -n 2 -s 1 --launcher local python test.py --kv-store dist_sync ...
    python launch.py -n 4 -s 2 --launcher ssh -H hosts.txt python test.py --kv-store dist_sync ...

MXNet's own convention (its ``tools/launch.py``): one scheduler, ``-s`` servers and ``-n``
workers, told their role and the scheduler's address by the ``DMLC_*`` variables; ranks
are assigned by the scheduler. Scheduler and servers are ``python -c "import mxnet"``
(importing MXNet with ``DMLC_ROLE=server|scheduler`` runs that role and exits when the
workers are done); each worker runs COMMAND.

A parameter-server group hangs when one member dies (docs/mxnet-notes.md), so this launcher
bounds every process: all output is relayed with a ``[role i]`` prefix; the first process
that fails (exits non-zero or is killed) stops the whole group, and the launcher exits
with that process's code (1 if it was killed) after printing its last lines; the cluster must
form within ``--start-timeout``; ``--timeout`` bounds the whole run; ssh connections carry
keep-alives and remote processes die with their connection.
"""
import argparse
import collections
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from ..cli import ArgumentParser, run, start
from ..errors import FBNetError
from ..threads import cores, user_threads

TAIL_LINES = 25
CONNECTED = "the scheduler is connected to"  # ps-lite's line once every node has joined
POLL_SECONDS = 0.1
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ServerAliveInterval=10",
               "-o", "ServerAliveCountMax=3", "-o", "StrictHostKeyChecking=accept-new")


class Member:
    """One launched process: its role, how it runs, its last lines."""

    def __init__(self, role, index, host, argv, env, remote=False):
        self.role, self.index, self.host = role, index, host
        self.argv, self.env, self.remote = argv, env, remote
        self.tail = collections.deque(maxlen=TAIL_LINES)
        self.proc = None
        self.reader = None

    @property
    def label(self):
        return self.role if self.role == "scheduler" else "%s %d" % (self.role, self.index)

    def start(self, relay, quiet=False):
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.reader = threading.Thread(target=self._read, args=(relay, quiet), daemon=True)
        self.reader.start()

    def _read(self, relay, quiet):
        prefix = "[%s] " % self.label
        for raw in iter(self.proc.stdout.readline, b""):
            # a progress bar redraws with carriage returns: keep only its last state
            line = raw.decode("utf-8", "replace").rstrip("\r\n").rsplit("\r", 1)[-1]
            self.tail.append(line)
            relay(prefix + line, self, quiet)

    def close_connection(self):
        """Close the process's stdin: for ssh, the remote command sees it end and stops."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def stop(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.killpg(self.proc.pid, sig)


def describe_exit(code):
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return "was killed by %s" % signal.Signals(-code).name
        except ValueError:
            return "was killed by signal %d" % -code
    if code == 255:
        return "exited with code 255 (for ssh: the connection failed or was lost)"
    return "exited with code %d" % code


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port(host, port):
    """Refuse a scheduler port that is taken, before anything starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise FBNetError("port %d on %s is already in use (%s); pick another with --port, "
                             "or leave --port out to use a free one"
                             % (port, host, e.strerror or e)) from None


def read_hostfile(path):
    try:
        with open(path) as f:
            hosts = [l.split("#", 1)[0].strip() for l in f]
    except OSError as e:
        raise FBNetError("cannot read the host file %s (%s); give -H FILE with one host "
                         "per line" % (path, e.strerror or e)) from None
    hosts = [h for h in hosts if h]
    if not hosts:
        raise FBNetError("the host file %s lists no host; put one host (or user@host) per "
                         "line" % path)
    return hosts


def address_towards(host):
    """This machine's address as seen on the route to ``host`` (the scheduler's URI)."""
    name = host.rsplit("@", 1)[-1]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((socket.gethostbyname(name), 9))  # UDP: no packet is sent
            return s.getsockname()[0]
    except OSError as e:
        raise FBNetError("cannot resolve or route to host %r (%s); check the host file or "
                         "give --scheduler-host" % (host, e)) from None


def remote_script(cwd, env, argv):
    """A POSIX shell line for ssh: run ``argv`` with ``env`` in ``cwd`` and kill it when
    the connection (its stdin) closes, so tearing down the ssh client ends the process."""
    assignments = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(env.items()))
    return ("cd %s || exit 1; exec 3<&0; env %s %s & child=$!; "
            "{ while read -r _; do :; done; kill -TERM $child; } <&3 >/dev/null 2>&1 & "
            "wait $child" % (shlex.quote(cwd), assignments, " ".join(map(shlex.quote, argv))))


class Cluster:
    """The scheduler, servers and workers of one run, started and watched together."""

    def __init__(self, args):
        self.args = args
        self.members = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self._plan()

    def _plan(self):
        a = self.args
        python = a.python or sys.executable
        role_argv = [python, "-c", "import mxnet"]
        if a.launcher == "local":
            hosts, root = ["127.0.0.1"], a.scheduler_host or "127.0.0.1"
        else:
            hosts = read_hostfile(a.hostfile)
            root = a.scheduler_host or address_towards(hosts[0])
        port = a.port or free_port("" if a.launcher == "ssh" else root)
        check_port("" if a.launcher == "ssh" else root, port)
        cluster_env = {"DMLC_PS_ROOT_URI": root, "DMLC_PS_ROOT_PORT": str(port),
                       "DMLC_NUM_SERVER": str(a.num_servers),
                       "DMLC_NUM_WORKER": str(a.num_workers)}
        self.address = "%s:%d" % (root, port)
        # the scheduler runs here, like MXNet's launcher does
        env = dict(os.environ, DMLC_ROLE="scheduler", PS_VERBOSE="1", **cluster_env)
        self.members.append(Member("scheduler", 0, "localhost", role_argv, env))
        plan = [("server", i, role_argv) for i in range(a.num_servers)] + \
               [("worker", i, list(a.command)) for i in range(a.num_workers)]
        for n, (role, i, argv) in enumerate(plan):
            host = hosts[n % len(hosts)]
            role_env = dict(cluster_env, DMLC_ROLE=role)
            if a.launcher == "local":
                role_env["DMLC_NODE_HOST"] = root  # keep the cluster on loopback
                if role == "worker" and not user_threads(os.environ):
                    # --threads auto takes every core: workers sharing this machine split them
                    role_env["MXNET_OMP_MAX_THREADS"] = str(max(1, cores() // a.num_workers))
                self.members.append(Member(role, i, host, argv, dict(os.environ, **role_env)))
            else:
                ssh = shlex.split(a.ssh_command) + list(SSH_OPTIONS) + [
                    host, remote_script(os.getcwd(), role_env, argv)]
                self.members.append(Member(role, i, host, ssh, dict(os.environ), remote=True))

    def relay(self, line, member, quiet):
        if member.role == "scheduler":
            if CONNECTED in line:
                self.connected.set()
            if quiet or "Barrier count" in line:
                return  # ps-lite chatter; kept in the tail for a failure report
        with self.lock:
            print(line, flush=True)

    def log(self, message):
        with self.lock:
            print("launch: %s" % message, file=sys.stderr, flush=True)

    def run(self):
        a = self.args
        self.log("scheduler at %s, %d server(s), %d worker(s), %s launcher"
                 % (self.address, a.num_servers, a.num_workers, a.launcher))
        start = time.time()
        try:
            for m in self.members:
                m.start(self.relay, quiet=m.role == "scheduler")
                self.log("%s on %s: pid %d" % (m.label, m.host, m.proc.pid))
            return self._watch(start)
        finally:
            self.teardown()

    def _watch(self, start):
        a = self.args
        workers = [m for m in self.members if m.role == "worker"]
        others = [m for m in self.members if m.role != "worker"]
        while True:
            time.sleep(POLL_SECONDS)
            elapsed = time.time() - start
            for m in self.members:
                code = m.proc.poll()
                if code is None:
                    continue
                if code != 0:  # scheduler and servers exit 0 only once the workers are done
                    return self._fail(m, "%s %s" % (m.label, describe_exit(code)))
            if all(w.proc.poll() == 0 for w in workers):
                return self._finish(others)
            if not self.connected.is_set() and elapsed > a.start_timeout:
                return self._fail(self.members[0], "the cluster did not form within %d s "
                                  "(--start-timeout): a server or worker could not reach the "
                                  "scheduler at %s" % (a.start_timeout, self.address))
            if a.timeout and elapsed > a.timeout:
                return self._fail(None, "the run exceeded --timeout %d s" % a.timeout)

    def _finish(self, others):
        deadline = time.time() + self.args.grace
        while time.time() < deadline and any(m.proc.poll() is None for m in others):
            time.sleep(POLL_SECONDS)
        stuck = [m.label for m in others if m.proc.poll() is None]
        if stuck:
            self.log("all workers finished; stopping %s, which did not exit within %d s"
                     % (", ".join(stuck), self.args.grace))
        self.log("all %d workers finished" % self.args.num_workers)
        return 0

    def _fail(self, member, reason):
        self.teardown()
        others = len([m for m in self.members if m is not member])
        self.log("%s; stopped the other %d process(es)" % (reason, others))
        if member is not None and member.reader is not None:
            member.reader.join(timeout=2)
            if member.tail:
                self.log("last lines of %s:\n  %s" % (member.label, "\n  ".join(member.tail)))
        code = member.proc.returncode if member is not None else None
        return code if code and code > 0 else 1  # the failing process's own code, if any

    def teardown(self):
        """Close every connection and SIGTERM every process group still alive, then
        SIGKILL after a short wait."""
        alive = [m for m in self.members if m.proc is not None and m.proc.poll() is None]
        for m in alive:
            m.close_connection()
            m.stop(signal.SIGTERM)
        deadline = time.time() + 5
        while time.time() < deadline and any(m.proc.poll() is None for m in alive):
            time.sleep(POLL_SECONDS)
        for m in alive:
            m.stop(signal.SIGKILL)
        for m in self.members:
            if m.proc is not None:
                try:
                    m.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.log("%s (pid %d) did not exit after SIGKILL" % (m.label, m.proc.pid))


def build_parser():
    p = ArgumentParser(
        description="Run COMMAND on every worker of an MXNet parameter-server cluster "
                    "(scheduler, servers and workers started with the DMLC_* variables).")
    p.add_argument("-n", "--num-workers", type=int, required=True, help="workers")
    p.add_argument("-s", "--num-servers", type=int, help="servers (default: as many as workers)")
    p.add_argument("--launcher", choices=["local", "ssh"], default="local",
                   help="local (default): every process on this machine (loopback); ssh: "
                        "servers and workers on the hosts of -H, the scheduler here")
    p.add_argument("-H", "--hostfile", help="for ssh: one host (or user@host) per line; "
                                            "servers then workers are placed round-robin")
    p.add_argument("--port", type=int, help="scheduler port (default: a free one)")
    p.add_argument("--scheduler-host", help="the scheduler's address as the hosts see it "
                                            "(default: 127.0.0.1 locally, else the address on "
                                            "the route to the first host)")
    p.add_argument("--python", help="Python that runs scheduler and servers (default: this "
                                     "one; for ssh it must exist at that path on every host)")
    p.add_argument("--ssh-command", default="ssh", help="ssh client to use (default: ssh)")
    p.add_argument("--start-timeout", type=int, default=120,
                   help="seconds for every process to join the scheduler (default: 120)")
    p.add_argument("--timeout", type=int, default=0,
                   help="seconds for the whole run (default 0: no limit)")
    p.add_argument("--grace", type=int, default=30,
                   help="seconds scheduler and servers get to exit after the workers "
                        "(default: 30)")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="what every worker runs, e.g. python test.py --kv-store dist_sync")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    start(threads=None)  # the log only: each worker and server chooses its own threads
    if args.num_servers is None:
        args.num_servers = args.num_workers
    if args.num_workers < 1 or args.num_servers < 1:
        raise FBNetError("-n and -s must be at least 1")
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        raise FBNetError("no command given; e.g. python launch.py -n 2 -s 1 python test.py "
                         "--kv-store dist_sync")
    if args.launcher == "ssh" and not args.hostfile:
        raise FBNetError("--launcher ssh needs -H HOSTFILE (one host per line)")
    if args.launcher == "local" and args.hostfile:
        raise FBNetError("-H is for --launcher ssh; the local launcher runs everything here")
    return Cluster(args).run()


if __name__ == "__main__":
    run(main, sys.argv[1:])
