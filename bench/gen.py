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


# ---------------------------------------------- PlanExe-shaped pipeline ----
#
# An LLM pipeline whose fan-out lists are made during the build: a spine of
# prompt steps with side branches, where some prompt tasks answer a JSON
# list (the stand-in server answers `LIST n` with n items), a `foreach`
# asks the model once per item, and a command task gathers the answers for
# the next step. Some lists are made from an earlier fan-out's gather
# (nested depth), and unrelated branches run beside them.

@dataclass
class Step:
    """One task of an LLM pipeline with fan-outs. `kind`:

    - "prompt": one call, a text answer;
    - "list": one call answering a JSON list of `n` items (`format = "json"`);
    - "fanout": a `foreach` over the list `deps[0]`, one call per item; the
      other deps are read by every instance;
    - "gather": a command task reading whole fan-outs (and maybe other
      steps); makes no call.
    """
    name: str
    kind: str
    deps: list
    n: int = 0


# Modelled on PlanExe's planning pipeline (purpose, plan type, locations,
# risks, assumptions, assessment, project plan, governance, team, SWOT,
# expert review, documents, WBS levels 1-3, task durations, schedule,
# review, summary, questions and answers, premortem, report). Declared in
# dependency order, which is also the order planexe starts ready tasks in.
# (name, kind, deps, items): at scale 1, 30 prompts + 9 lists + 134 fan-out
# items = 173 calls.
PLANEXE_SHAPE = [
    ("setup", "prompt", [], 0),
    ("purpose", "prompt", ["setup"], 0),
    ("premise_attack", "prompt", ["setup"], 0),          # side branch
    ("levers", "list", ["purpose"], 10),                 # strategic levers
    ("lever_assess", "fanout", ["levers"], 10),
    ("levers_all", "gather", ["lever_assess"], 0),
    ("plan_type", "prompt", ["purpose"], 0),
    ("locations", "prompt", ["plan_type"], 0),
    ("currency", "prompt", ["locations"], 0),
    ("risks", "list", ["currency"], 16),
    ("risk_assess", "fanout", ["risks", "purpose"], 16),
    ("risks_all", "gather", ["risk_assess"], 0),
    ("assumptions", "prompt", ["currency"], 0),          # beside the risk fan-out
    ("assumptions_review", "prompt", ["assumptions", "risks_all"], 0),
    ("distill_assumptions", "prompt", ["assumptions_review"], 0),
    ("assessment", "prompt", ["distill_assumptions"], 0),
    ("project_plan", "prompt", ["assessment", "premise_attack", "levers_all"], 0),
    ("gov1", "prompt", ["project_plan"], 0),             # governance: a chain of 6
    ("gov2", "prompt", ["gov1"], 0),
    ("gov3", "prompt", ["gov2"], 0),
    ("gov4", "prompt", ["gov3"], 0),
    ("gov5", "prompt", ["gov4"], 0),
    ("gov6", "prompt", ["gov5"], 0),
    ("related_resources", "prompt", ["project_plan"], 0),
    ("team", "list", ["project_plan"], 8),
    ("team_contract", "fanout", ["team"], 8),
    ("team_contract_all", "gather", ["team_contract"], 0),
    ("team_roles", "list", ["team_contract_all"], 8),    # nested: made from a gather
    ("team_story", "fanout", ["team_roles"], 8),
    ("team_env", "fanout", ["team_roles"], 8),
    ("team_all", "gather", ["team_story", "team_env"], 0),
    ("team_review", "prompt", ["team_all"], 0),
    ("swot", "prompt", ["project_plan"], 0),
    ("experts", "list", ["swot"], 8),
    ("expert_review", "fanout", ["experts"], 8),
    ("experts_all", "gather", ["expert_review"], 0),
    ("expert_summary", "prompt", ["experts_all"], 0),
    ("data_collection", "prompt", ["project_plan"], 0),
    ("documents", "list", ["data_collection"], 12),
    ("doc_draft", "fanout", ["documents"], 12),
    ("docs_all", "gather", ["doc_draft"], 0),
    ("wbs1", "prompt", ["project_plan"], 0),
    ("wbs2", "list", ["wbs1"], 8),                       # work packages
    ("wbs3", "fanout", ["wbs2"], 8),
    ("wbs3_all", "gather", ["wbs3"], 0),
    ("wbs_tasks", "list", ["wbs3_all"], 40),             # nested: tasks of level 3
    ("durations", "fanout", ["wbs_tasks"], 40),
    ("durations_all", "gather", ["durations"], 0),
    ("dependencies", "prompt", ["wbs3_all"], 0),
    ("pitch", "prompt", ["wbs1"], 0),
    ("schedule", "prompt", ["durations_all", "dependencies"], 0),
    ("review_plan", "prompt", ["schedule", "team_review", "expert_summary",
                               "docs_all", "gov6", "pitch", "related_resources"], 0),
    ("exec_summary", "prompt", ["review_plan"], 0),
    ("questions", "list", ["exec_summary"], 16),
    ("answers", "fanout", ["questions"], 16),
    ("answers_all", "gather", ["answers"], 0),
    ("premortem", "prompt", ["review_plan"], 0),
    ("report", "prompt", ["answers_all", "premortem"], 0),
]


def _sh1(s):
    """s in single quotes for sh (s holds no single quote)."""
    assert "'" not in s
    return f"'{s}'"


class LlmPipeline:
    """A pipeline of Steps; writes it for planexe (prompt tasks and
    `foreach`) and as the predecessor runs it (command tasks calling the
    server with curl, each fan-out's calls one after another in one task),
    and expands it into the full task graph the bound is computed on."""

    def __init__(self, name, steps):
        self.name = name
        self.steps = steps
        self.by = {s.name: s for s in steps}
        seen = set()
        for s in steps:   # dependency order, and fan-outs only via gathers
            assert all(d in seen for d in s.deps), s.name
            if s.kind == "fanout":
                assert self.by[s.deps[0]].kind == "list", s.name
            if s.kind != "gather":
                assert all(self.by[d].kind != "fanout" for d in s.deps), s.name
            seen.add(s.name)

    def calls(self):
        """Model calls of one full build."""
        return sum(s.n if s.kind == "fanout" else int(s.kind != "gather")
                   for s in self.steps)

    def fanouts(self):
        return [s for s in self.steps if s.kind == "fanout"]

    @staticmethod
    def output(s):
        return {"list": f"out/{s.name}.json",
                "fanout": f"out/{s.name}/{{{{ key }}}}.md"}.get(s.kind, f"out/{s.name}.md")

    def expanded(self):
        """The task graph once every list is made: [(name, makes_a_call,
        deps)] in dependency order. Instances are `FAN[wI]`, as planexe
        names them (the server's items have ids w1..wn); a gather waits for
        every instance of the fan-outs it reads."""
        out = []
        inst = {}
        for s in self.steps:
            if s.kind == "fanout":
                inst[s.name] = [f"{s.name}[w{i}]" for i in range(1, s.n + 1)]
                out += [(i, True, list(s.deps)) for i in inst[s.name]]
            elif s.kind == "gather":
                deps = [x for d in s.deps for x in inst.get(d, [d])]
                out.append((s.name, False, deps))
            else:
                out.append((s.name, True, list(s.deps)))
        return out

    def _inputs(self, s, deps):
        return [self.output(self.by[d]) for d in deps] or [ROOT]

    def write_planexe(self, d, port, max_concurrency=64):
        lines = ["[pipeline]", f"name = {_q(self.name)}", 'model = "bench"', "",
                 "[models.bench]", 'provider = "openai"',
                 f'base_url = "http://127.0.0.1:{port}/v1"', 'model = "bench"',
                 "stream = false", f"max_concurrency = {max_concurrency}", ""]
        for s in self.steps:
            lines.append(f"[tasks.{s.name}]")
            if s.kind == "fanout":
                lst = self.output(self.by[s.deps[0]])
                lines.append(f'foreach = {{ file = {_q(lst)}, key = "id" }}')
                extra = [self.output(self.by[x]) for x in s.deps[1:]]
                if extra:
                    lines.append("inputs = [" + ", ".join(_q(i) for i in extra) + "]")
                body = (f"task: {s.name}[{{{{ key }}}}]\nWork on {{{{ item.title }}}}\n"
                        + "".join("{{ inputs['%s'] | length }}\n" % i for i in extra))
            elif s.kind == "gather":
                # Naming a fan-out task in inputs means all of its outputs.
                ins = [x if self.by[x].kind == "fanout" else self.output(self.by[x])
                       for x in s.deps]
                lines.append("inputs = [" + ", ".join(_q(i) for i in ins) + "]")
                lines.append(f"outputs = [{_q(self.output(s))}]")
                lines.append('command = "cat {inputs} > {outputs}"')
                lines.append("")
                continue
            else:
                ins = self._inputs(s, s.deps)
                lines.append("inputs = [" + ", ".join(_q(i) for i in ins) + "]")
                body = (f"task: {s.name}\n" + (f"LIST {s.n}\n" if s.kind == "list" else "")
                        + "".join("{{ inputs['%s'] | length }}\n" % i for i in ins))
                if s.kind == "list":
                    lines.append('format = "json"')
            lines.append(f"outputs = [{_q(self.output(s))}]")
            lines.append(f"prompt = {_q(body)}")
            lines.append("")
        _write(d, "pipeline.toml", "\n".join(lines))

    def write_serial(self, d, url):
        """The predecessor's way: every call a command task running curl; a
        fan-out and its gather one task making the fan-out's calls one after
        another (items w1..wn, as the server answers the list). Each request
        carries its logical task's name (`task: NAME`), as planexe's do."""
        def curl(content):
            body = json.dumps({"model": "bench",
                               "messages": [{"role": "user", "content": content}]})
            return (f"curl -sf -H 'content-type: application/json' -d {_sh1(body)} {url}")

        lines = ["[pipeline]", f"name = {_q(self.name + ' (serial)')}", ""]
        for s in self.steps:
            if s.kind == "fanout":
                continue    # made by the gather that reads it
            out = self.output(s)
            if s.kind == "gather":
                deps = [x for f in s.deps for x in (self.by[f].deps if self.by[f].kind == "fanout"
                                                   else [f])]
                cmd = [f": > {out}"]
                for f in s.deps:
                    if self.by[f].kind != "fanout":
                        cmd.append(f"cat {self.output(self.by[f])} >> {out}")
                        continue
                    # $j expands in the shell: the body is in double quotes.
                    body = json.dumps({"model": "bench", "messages": [
                        {"role": "user", "content": f"task: {f}[wJJ]"}]})
                    body = '"' + body.replace("\\", "\\\\").replace('"', '\\"') + '"'
                    body = body.replace("JJ", "${j}")
                    cmd.append(f"for j in $(seq {self.by[f].n}); do curl -sf -H "
                               f"'content-type: application/json' -d {body} {url} "
                               f">> {out} || exit 1; done")
                command = "; ".join(cmd)
            else:
                deps = s.deps
                content = f"task: {s.name}\n" + (f"LIST {s.n}\n" if s.kind == "list" else "")
                command = f"{curl(content)} > {out}"
            ins = self._inputs(s, list(dict.fromkeys(deps)))
            lines += [f"[tasks.{s.name}]",
                      "inputs = [" + ", ".join(_q(i) for i in ins) + "]",
                      f"outputs = [{_q(out)}]",
                      f"command = {_q(command)}", ""]
        _write(d, "pipeline.toml", "\n".join(lines))


def planexe_shaped(scale=1.0):
    """PLANEXE_SHAPE with every list's size × scale (at least 2), so smoke
    runs keep the shape at a fraction of the calls."""
    steps = [Step(n, k, list(d), max(2, round(i * scale)) if i else 0)
             for n, k, d, i in PLANEXE_SHAPE]
    by = {s.name: s for s in steps}
    for s in steps:   # a fan-out has as many items as its list
        if s.kind == "fanout":
            s.n = by[s.deps[0]].n
    p = LlmPipeline("planexe-shaped", steps)
    p.name = f"PlanExe-shaped, {p.calls()} calls"
    return p
