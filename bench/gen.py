"""Synthetic pipelines for the benchmark, written identically for planexe
(pipeline.toml), ninja (build.ninja) and GNU make (Makefile).

A graph is a list of tasks in dependency order. Every task reads some files
(source files under src/, or outputs of earlier tasks under out/) and writes
exactly one output file under out/. The same command string is used by all
three tools, so after a build the out/ folders can be compared byte for byte.

The default command is `cksum IN1 IN2 ... > OUT`: its output is a few short
lines naming the inputs (so sizes stay bounded however deep the graph is) and
changes whenever an input's bytes change (so edits propagate).
"""

import json
import os
import random
from dataclasses import dataclass, field

SEED = 20240611          # fixed seed: the same graph on every run and machine
ROOT = "src/root.txt"    # the source every task depends on, transitively
MID = "src/mid.txt"      # a source read by one task in the middle of the graph


@dataclass
class Task:
    name: str
    inputs: list
    output: str


@dataclass
class Graph:
    name: str
    tasks: list                                  # in dependency order
    sources: dict = field(default_factory=dict)  # path -> initial bytes
    root: str = ROOT
    mid: str | None = None

    def __len__(self):
        return len(self.tasks)

    def outputs(self):
        return [t.output for t in self.tasks]

    def producers(self):
        return {t.output: t for t in self.tasks}

    def critical_path(self):
        """Length, in tasks, of the longest dependency chain."""
        prod = self.producers()
        depth = {}
        for t in self.tasks:
            depth[t.name] = 1 + max(
                (depth[prod[i].name] for i in t.inputs if i in prod), default=0)
        return max(depth.values())

    def affected_by(self, source):
        """Names of the tasks that must re-run when `source` changes bytes
        (readers of it, transitively), assuming every re-run changes its
        output, which cksum does."""
        dirty = {source}
        names = []
        for t in self.tasks:
            if any(i in dirty for i in t.inputs):
                dirty.add(t.output)
                names.append(t.name)
        return names


def _out(name, ext="txt"):
    return f"out/{name}.{ext}"


def _sources(mid):
    src = {ROOT: b"root source\n"}
    if mid:
        src[MID] = b"mid source 0\n"
    return src


# --------------------------------------------------------------- shapes ----

def chain(n):
    """t0000 -> t0001 -> ... ; the middle task also reads src/mid.txt."""
    tasks = []
    prev = ROOT
    for i in range(n):
        t = Task(f"t{i:04d}", [prev], _out(f"t{i:04d}"))
        if i == n // 2:
            t.inputs.append(MID)
        tasks.append(t)
        prev = t.output
    return Graph(f"chain {n}", tasks, _sources(True), mid=MID)


def wide(w):
    """1 -> w -> 1: a head task, w tasks reading it, a tail reading them all."""
    head = Task("head", [ROOT], _out("head"))
    mids = [Task(f"w{i:04d}", [head.output], _out(f"w{i:04d}")) for i in range(w)]
    mids[w // 2].inputs.append(MID)
    tail = Task("tail", [m.output for m in mids], _out("tail"))
    return Graph(f"wide 1 → {w:,} → 1", [head, *mids, tail], _sources(True), mid=MID)


def layered(layers, width, mid=True, ext="txt", seed=SEED, name=None):
    """`layers` layers of `width` tasks. Layer 0 reads src/root.txt; every
    later task reads 2 or 3 distinct outputs of the layer before, chosen with
    a fixed seed. With `mid`, the middle task of the middle layer also reads
    src/mid.txt."""
    rng = random.Random(seed)
    tasks = []
    prev = []
    for layer in range(layers):
        cur = []
        for i in range(width):
            nm = f"l{layer:02d}_{i:04d}"
            if layer == 0:
                ins = [ROOT]
            else:
                k = min(len(prev), rng.choice((2, 3)))
                ins = sorted(rng.sample(prev, k))
            if mid and layer == layers // 2 and i == width // 2:
                ins.append(MID)
            t = Task(nm, ins, _out(nm, ext))
            cur.append(t.output)
            tasks.append(t)
        prev = cur
    return Graph(name or f"layered {layers} × {width}", tasks, _sources(mid),
                 mid=MID if mid else None)


def planning(spine=40, branches=20, seed=SEED, ext="md"):
    """The shape of an LLM planning pipeline: a spine of `spine` steps, each
    reading the step before, plus `branches` side branches of 1 or 2 tasks
    that start from spine step a and feed spine step a+len+1. A branch is
    never longer than the stretch of spine it runs beside, so the critical
    path is the spine."""
    rng = random.Random(seed)
    s = [Task(f"s{i:02d}", [ROOT if i == 0 else _out(f"s{i-1:02d}", ext)],
              _out(f"s{i:02d}", ext)) for i in range(spine)]
    side = []
    for b in range(branches):
        length = 1 + (b % 2)                        # alternate 1- and 2-task branches
        a = rng.randrange(0, max(1, spine - length - 1))
        prev = s[a].output
        for j in range(length):
            nm = f"b{b:02d}_{j}"
            t = Task(nm, [prev], _out(nm, ext))
            side.append((a, t))
            prev = t.output
        join = min(a + length + 1, spine - 1)
        s[join].inputs.append(prev)
    # Dependency order: each branch task right after its spine step.
    tasks = []
    for i, st in enumerate(s):
        tasks.append(st)
        tasks.extend(t for a, t in side if a == i)
    # A join may come before a branch's second task in that order; re-sort
    # topologically to be safe.
    tasks = _toposort(tasks)
    return Graph(f"planning {len(tasks)} tasks", tasks, _sources(False))


def independent(n, ext="md"):
    """n tasks that each read one small source file of their own."""
    tasks = []
    src = {}
    for i in range(n):
        path = f"src/in{i:03d}.txt"
        src[path] = f"input {i}\n".encode()
        tasks.append(Task(f"p{i:03d}", [path], _out(f"p{i:03d}", ext)))
    g = Graph(f"{n} independent", tasks, src)
    g.root = tasks[0].inputs[0]
    return g


def _toposort(tasks):
    prod = {t.output: t for t in tasks}
    done, order = set(), []

    def visit(t):
        if t.name in done:
            return
        for i in t.inputs:
            if i in prod:
                visit(prod[i])
        done.add(t.name)
        order.append(t)

    for t in tasks:
        visit(t)
    return order


# ------------------------------------------------------------- commands ----

def cksum_cmd(sleep=None):
    """The command of a task, as one string used verbatim by every tool."""
    def cmd(t):
        c = f"cksum {' '.join(t.inputs)} > {t.output}"
        return f"sleep {sleep:g}; {c}" if sleep else c
    return cmd


# -------------------------------------------------------------- writers ----

def write_sources(graph, d):
    for path, data in graph.sources.items():
        p = os.path.join(d, path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    # make does not create folders for its targets; create out/ for all.
    os.makedirs(os.path.join(d, "out"), exist_ok=True)


def _q(s):
    """A TOML basic string (JSON escapes are valid TOML for these texts)."""
    return json.dumps(s, ensure_ascii=False)


def write_planexe(graph, d, cmd=None, model=None):
    """pipeline.toml. With `model` (a dict with port, stream), every task is a
    prompt task asking that model; else a command task running cmd(task)."""
    lines = ["[pipeline]", f"name = {_q(graph.name)}"]
    if model:
        lines += [
            'model = "bench"',
            "",
            "[models.bench]",
            'provider = "openai"',
            f'base_url = "http://127.0.0.1:{model["port"]}/v1"',
            'model = "bench"',
            f'stream = {"true" if model.get("stream") else "false"}',
            "max_concurrency = 64",
        ]
    lines.append("")
    for t in graph.tasks:
        lines.append(f"[tasks.{t.name}]")
        lines.append("inputs = [" + ", ".join(_q(i) for i in t.inputs) + "]")
        lines.append(f"outputs = [{_q(t.output)}]")
        if model:
            body = "Summarize:\n" + "\n".join(
                "{{ inputs['%s'] }}" % i for i in t.inputs)
            lines.append(f"prompt = {_q(body)}")
        else:
            lines.append(f"command = {_q(cmd(t))}")
        lines.append("")
    _write(d, "pipeline.toml", "\n".join(lines))


def write_ninja(graph, d, cmd):
    """build.ninja: one generic rule whose command is a per-edge variable."""
    lines = ["rule run", "  command = $cmd", ""]
    for t in graph.tasks:
        lines.append(f"build {t.output}: run {' '.join(t.inputs)}")
        lines.append(f"  cmd = {cmd(t)}")
    _write(d, "build.ninja", "\n".join(lines) + "\n")


def write_make(graph, d, cmd):
    """Makefile: one explicit rule per task, `all` lists every output. Built-in
    rules are off (as a performance-minded Makefile would have it), so make
    does not search implicit rules for the thousands of files."""
    lines = [
        "MAKEFLAGS += --no-builtin-rules",
        ".SUFFIXES:",
        ".PHONY: all",
        "all: " + " ".join(graph.outputs()),
        "",
    ]
    for t in graph.tasks:
        lines.append(f"{t.output}: {' '.join(t.inputs)}")
        lines.append(f"\t{cmd(t)}")
    _write(d, "Makefile", "\n".join(lines) + "\n")


def _write(d, name, text):
    with open(os.path.join(d, name), "w") as f:
        f.write(text)
