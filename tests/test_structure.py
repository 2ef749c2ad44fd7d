"""The package's shape: which part may import which, no import loop, each module says its job, none too long."""
import ast
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PACKAGE = os.path.join(ROOT, "fbnet_symbol")

# Who may import whom, by part (a subpackage; the package's top-level modules are "base",
# "settings" and the seed's names). A part may import itself and what is listed; the
# layers run from base (no part) up to search (every part).
ALLOWED = {
    "base": set(),                          # errors, fileio, threads, cli, checkpoint
    "space": {"base"},                      # what a network is, its input's pixels included
    "data": {"base", "space"},              # RecordIO files and the reader
    "dist": {"base"},                       # devices, kvstore, launcher
    "ship": {"base", "space", "data"},      # exports
    "latency": {"base", "space", "dist"},   # tables
    "faces": {"base", "space", "data", "ship", "dist"},  # face files, verification
    "train": {"base", "space", "data", "dist"},          # the loop, knowing no task
    "settings": {"base", "space"},                       # the CLI layer's one source
    "search": {"base", "space", "data", "dist", "ship", "latency", "faces", "train",
               "settings"},
    "seed": {"base", "space", "search", "train"},        # FBNet.py, blocks.py, util.py ...
    # the commands sit above every part; an earlier release's module names forward to them
    "commands": {"base", "space", "data", "dist", "ship", "latency", "faces", "train",
                 "settings", "search"},
    "old": {"base", "ship", "faces", "search", "commands"},
}
TOP = {"errors": "base", "fileio": "base", "threads": "base", "cli": "base", "checkpoint": "base",
       "settings": "settings", "FBNet": "seed", "FBNet_SE": "seed", "blocks": "seed",
       "blocks_se": "seed", "util": "seed", "__init__": "seed",
       "export": "old", "verify": "old", "study": "old"}
MAX_TOP_MODULES = 8  # the package's own top; the seed's and earlier releases' names aside
MAX_LINES = 400


def modules():
    """{dotted name relative to the package: path} of every module."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), PACKAGE)[:-3]
                found[rel.replace(os.sep, ".")] = os.path.join(folder, name)
    return found


def part_of(module):
    """The part a module belongs to; ``None`` for a command (``__main__``): commands sit
    above every part."""
    if module.endswith("__main__"):
        return None
    head = module.split(".")[0]
    return TOP[head] if "." not in module else head


def imported(module, path, known):
    """Package modules ``module`` imports, function-level imports included."""
    package = module.split(".")[:-1]  # the package a relative import starts from
    with open(path) as f:
        tree = ast.parse(f.read())
    deps = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            target = package[:len(package) - (node.level - 1)] + (node.module or "").split(".")
        elif (node.module or "").split(".")[0] == "fbnet_symbol":
            target = node.module.split(".")[1:]
        else:
            continue
        target = ".".join(t for t in target if t)
        for alias in node.names:  # "from . import theta" imports a module
            name = (target + "." if target else "") + alias.name
            if name in known:
                deps.add(name)
            else:
                deps.add(target if target in known else (target + "." if target else "")
                         + "__init__")
    return deps & set(known)


def import_graph():
    known = modules()
    return {m: imported(m, p, known) - {m} for m, p in known.items()}


def layering_violations(graph):
    bad = []
    for module, deps in sorted(graph.items()):
        mine = part_of(module)
        for dep in sorted(deps):
            theirs = part_of(dep)
            if mine is not None and theirs != mine and theirs not in ALLOWED[mine]:
                bad.append("%s (%s) imports %s (%s)" % (module, mine, dep, theirs))
    return bad


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_every_part_imports_only_the_parts_below_it():
    graph = import_graph()
    assert "train.trainer" in graph and "search.task" in graph["search.run"]
    assert "space.network" in graph["train.trainer"]  # the reader sees real imports
    assert layering_violations(graph) == []
    # the check does catch a part reaching up
    assert layering_violations(dict(graph, **{"space.network": {"search.supernet"}}))
    assert layering_violations(dict(graph, **{"train.trainer": {"settings"}}))


def test_the_package_has_no_import_loop():
    graph = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert find_cycle(dict(graph, **{"data.check": {"search.run"}})) is not None


def test_the_trainer_knows_no_task_and_the_model_no_settings():
    graph = import_graph()
    assert not {d for d in graph["train.trainer"] if d.startswith(("search.", "train.task"))}
    assert "settings" not in graph["search.supernet"] | graph["space.network"]


@pytest.mark.parametrize("module", sorted(modules()))
def test_every_module_states_its_job_and_stays_short(module):
    path = modules()[module]
    with open(path) as f:
        text = f.read()
    first = text.split("\n", 1)[0]
    assert first.startswith('"""') and len(first.strip()) > 10, module
    assert text.count("\n") <= MAX_LINES, "%s has %d lines" % (module, text.count("\n"))


def test_the_top_of_the_package_holds_few_modules():
    top = [m for m in modules() if "." not in m and m not in ("__init__", "__main__")]
    assert set(top) <= set(TOP), top
    own = [m for m in top if TOP[m] not in ("seed", "old")]
    assert len(own) <= MAX_TOP_MODULES, own
    for folder in sorted(os.listdir(PACKAGE)):  # every part opens with its job
        init = os.path.join(PACKAGE, folder, "__init__.py")
        if os.path.isdir(os.path.join(PACKAGE, folder)) and os.path.isfile(init):
            assert folder in ALLOWED, folder


MAX_FUNCTION_LINES = 60


def test_no_function_of_the_package_or_the_root_scripts_is_long():
    scripts = [os.path.join(ROOT, f) for f in os.listdir(ROOT) if f.endswith(".py")]
    long = []
    for path in list(modules().values()) + scripts:
        with open(path) as f:
            tree = ast.parse(f.read())
        long += ["%s:%d %s (%d lines)" % (os.path.relpath(path, ROOT), node.lineno, node.name,
                                          node.end_lineno - node.lineno + 1)
                 for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long


# the run layer and above: where a run's Settings is read field by field (search/parts.py
# builds each part's config from it); every module below takes what it needs explicitly
RUN_LAYER = ("search.run", "search.parts", "search.study", "search.study_jobs",
             "search.study_tasks")


def settings_readers(module, path):
    """Where ``module`` reads a run's settings object: a parameter or an attribute named
    ``settings`` (a call ``x.settings()`` — a latency table's own dict — is not one)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.arg == "settings":
            found.append("%s:%d parameter settings" % (module, node.lineno))
        elif (isinstance(node, ast.Attribute) and node.attr == "settings"
              and id(node) not in called):
            found.append("%s:%d .settings" % (module, node.lineno))
        elif isinstance(node, ast.Name) and node.id == "Settings":
            found.append("%s:%d Settings" % (module, node.lineno))
    return found


def below_the_run_layer(module):
    part = part_of(module)
    return part not in (None, "settings", "seed", "commands", "old") and \
        module not in RUN_LAYER


def test_no_module_below_the_run_layer_reads_the_settings():
    found = [hit for module, path in sorted(modules().items()) if below_the_run_layer(module)
             for hit in settings_readers(module, path)]
    assert found == []
    assert below_the_run_layer("train.trainer") and below_the_run_layer("search.task")
    assert not below_the_run_layer("search.parts")


def test_the_settings_check_catches_a_reader(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f(env, table):\n    x = table.settings()\n    return env.settings.lr\n")
    assert settings_readers("train.m", str(path)) == ["train.m:3 .settings"]
    path.write_text("def f(settings):\n    return 1\n")
    assert settings_readers("train.m", str(path)) == ["train.m:1 parameter settings"]


def calls_start(path):
    """Whether the ``main`` of the module at ``path`` calls ``start`` (``cli.start``)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    return any(isinstance(node, ast.Call) and
               getattr(node.func, "id", getattr(node.func, "attr", None)) == "start"
               for m in mains for node in ast.walk(m))


def test_every_command_starts_with_the_one_start_up(tmp_path):
    from fbnet_symbol.commands import COMMANDS
    paths = {name: os.path.join(ROOT, *module.split(".")) + ".py"
             for name, (module, _, _) in COMMANDS.items()}
    assert [name for name, path in paths.items() if not calls_start(path)] == []
    # ... and it can come before MXNet loads: importing a command does not load it
    code = ("import sys, importlib\nfor m in %r:\n    importlib.import_module(m)\n"
            "print('mxnet' in sys.modules)" % [m for m, _, _ in COMMANDS.values()])
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    assert loaded == "False"
    planted = tmp_path / "m.py"
    planted.write_text("def main(argv=None):\n    return run(argv)\n")
    assert not calls_start(str(planted))
