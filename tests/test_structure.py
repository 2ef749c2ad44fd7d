"""The package's shape: no import loop between its modules, and each module says its job."""
import ast
import os

from tests.conftest import ROOT

PACKAGE = os.path.join(ROOT, "fbnet_symbol")


def module_imports():
    """{module: set of package modules it imports}, function-level imports included."""
    graph = {}
    for name in sorted(os.listdir(PACKAGE)):
        if not name.endswith(".py"):
            continue
        module = name[:-3]
        with open(os.path.join(PACKAGE, name)) as f:
            tree = ast.parse(f.read())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:  # from . import a, b
                    deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "fbnet_symbol."):
                deps.add(node.module.split(".")[1])
        graph[module] = deps - {module, "__init__"}
    return graph


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


def test_the_package_has_no_import_loop():
    graph = module_imports()
    assert "trainer" in graph and "search_task" in graph["search"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    # the checker does find a loop when there is one
    assert find_cycle(dict(graph, data={"search"})) is not None


def test_the_trainer_knows_no_task():
    assert not module_imports()["trainer"] & {"search_task", "train_task", "supernet",
                                              "child", "search"}


def test_every_module_states_its_job_in_its_first_line():
    for name in sorted(os.listdir(PACKAGE)):
        if name.endswith(".py"):
            with open(os.path.join(PACKAGE, name)) as f:
                first = f.readline()
            assert first.startswith('"""') and len(first.strip()) > 10, name
