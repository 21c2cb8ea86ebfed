"""Running planexe, ninja and make: timing one invocation, peak RSS, resetting
a build directory to a clean state, and counting the tasks a build re-ran."""

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass


class HarnessError(Exception):
    """The harness itself broke (a tool failed, a check could not be made)."""


@dataclass
class Run:
    argv: list
    wall: float        # seconds
    rc: int
    stdout: str
    stderr: str
    maxrss_kb: int     # peak resident set of the process (and its waited-for children)


def run(argv, cwd, env=None, check=True):
    """Runs argv in cwd, output to temporary files (no pipes to drain), and
    returns its wall time and peak RSS. The wall time spans fork to reap."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        r = Run(argv, wall, p.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), ru.ru_maxrss)
    if check and r.rc != 0:
        raise HarnessError(
            f"{' '.join(argv)} in {cwd} exited {r.rc}\n"
            f"--- stdout (tail)\n{r.stdout[-2000:]}\n--- stderr (tail)\n{r.stderr[-2000:]}")
    return r


TIME = "/usr/bin/time"


def exact_rss():
    return os.access(TIME, os.X_OK)


def tool_env():
    env = dict(os.environ)
    env["NINJA_STATUS"] = "[%f/%t] "   # the default, made explicit: we parse it
    env.pop("MAKEFLAGS", None)         # an outer make must not leak -j or -s
    env.pop("MFLAGS", None)
    env.pop("PLANEXE_PIPELINE", None)
    env.pop("PLANEXE_MODEL", None)
    env["NO_COLOR"] = "1"
    env["LC_ALL"] = "C"
    return env


_NINJA_LINE = re.compile(r"^\[\d+/\d+\] ", re.M)


class Tool:
    """One build tool. `name` is how the report calls it."""
    name = "?"

    def __init__(self, exe):
        self.exe = exe
        self.env = tool_env()

    def build(self, d, jobs, check=True):
        return run(self.argv(jobs), d, self.env, check)

    def peak_rss_kb(self, d, jobs):
        """Peak RSS of one build, in KiB, measured by /usr/bin/time. (The
        ru_maxrss that os.wait4 reports for a direct child is useless here:
        Linux carries the forking Python's high-water mark over exec, so every
        tool would show the harness's own ~18 MiB.) Without /usr/bin/time,
        falls back to that figure; `exact_rss()` says which one is used."""
        if not exact_rss():
            return self.build(d, jobs).maxrss_kb
        with tempfile.NamedTemporaryFile("r") as f:
            run([TIME, "-f", "%M", "-o", f.name, *self.argv(jobs)], d, self.env)
            return int(f.read().strip().splitlines()[-1])

    def argv(self, jobs):
        raise NotImplementedError

    def reran(self, r):
        """How many tasks the finished build `r` ran."""
        raise NotImplementedError

    def state_files(self):
        return []

    def clean(self, d, outputs):
        """Back to never-built: outputs and the tool's own state deleted."""
        for o in outputs:
            try:
                os.unlink(os.path.join(d, o))
            except FileNotFoundError:
                pass
        for s in self.state_files():
            p = os.path.join(d, s)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.unlink(p)

    def version(self):
        try:
            out = subprocess.run([self.exe, "--version"], capture_output=True,
                                 text=True, check=False).stdout
        except OSError as e:
            return f"unavailable ({e})"
        return out.strip().splitlines()[0] if out.strip() else "?"


class Planexe(Tool):
    name = "planexe"

    def argv(self, jobs):
        return [self.exe, "build", "-j", str(jobs)]

    def reran(self, r):
        # stderr is a file, so progress is plain: one `start  NAME` per task run.
        return sum(1 for line in r.stderr.splitlines() if line.startswith("start  "))

    def state_files(self):
        return [".planexe"]

    def status(self, d, json=False):
        """`planexe status` (with `json`: `status --json`, one line of JSON
        since stdout is not a terminal)."""
        return run([self.exe, "status", *(["--json"] if json else [])], d, self.env)

    def phases(self, d, jobs):
        """One build with `PLANEXE_STATS=1`: its wall time (s), the total
        milliseconds of each phase planexe names (`stats: NAME  COUNT  MS`),
        and its own CPU (ms, user and system, not its commands')."""
        env = dict(self.env, PLANEXE_STATS="1")
        r = run(self.argv(jobs), d, env)
        phases, cpu = {}, {}
        for line in r.stderr.splitlines():
            if not line.startswith("stats: "):
                continue
            m = _CPU_LINE.search(line)
            if m:
                cpu = {"user": float(m.group(1)), "system": float(m.group(2))}
                continue
            m = _PHASE_LINE.match(line)
            if m:
                phases[m.group(1)] = float(m.group(3))
        return {"wall": r.wall, "phases": phases, "cpu_ms": cpu}


_PHASE_LINE = re.compile(r"^stats: (.+?)\s+(\d+)\s+([0-9.]+)$")
_CPU_LINE = re.compile(r"user ([0-9.]+) ms, system ([0-9.]+) ms")


class Ninja(Tool):
    name = "ninja"

    def argv(self, jobs):
        return [self.exe, "-j", str(jobs)]

    def reran(self, r):
        # Not on a terminal, ninja prints one `[N/M] command` line per edge run.
        return len(_NINJA_LINE.findall(r.stdout))

    def state_files(self):
        return [".ninja_log", ".ninja_deps"]

    def version(self):
        return "ninja " + super().version()


class Make(Tool):
    name = "make"

    def __init__(self, exe, commands=()):
        super().__init__(exe)
        self.commands = set(commands)

    def argv(self, jobs):
        return [self.exe, "-j", str(jobs)]

    def reran(self, r):
        # make echoes each recipe line it runs; the recipes are one line each.
        return sum(1 for line in r.stdout.splitlines() if line in self.commands)


def ensure_ninja():
    """Path of ninja; installs the ninja-build package when it is missing."""
    exe = shutil.which("ninja")
    if exe:
        return exe
    apt = ["apt-get", "install", "-y", "ninja-build"]
    if os.geteuid() != 0 and shutil.which("sudo"):
        apt = ["sudo", *apt]
    print("ninja not found; running: " + " ".join(apt), flush=True)
    ok = subprocess.run(apt, check=False).returncode == 0
    if not ok:   # a fresh container may have no package lists yet
        subprocess.run([*apt[:-3], "update"], check=False)
        subprocess.run(apt, check=False)
    exe = shutil.which("ninja")
    if not exe:
        raise HarnessError("ninja is missing and `apt-get install -y ninja-build` failed")
    return exe


def same_outputs(dirs, outputs):
    """Whether every output has the same bytes in every directory. Returns
    (ok, first difference or None)."""
    base, *others = dirs
    for o in outputs:
        try:
            with open(os.path.join(base, o), "rb") as f:
                ref = f.read()
        except FileNotFoundError:
            return False, f"{o} missing in {base}"
        for d in others:
            try:
                with open(os.path.join(d, o), "rb") as f:
                    if f.read() != ref:
                        return False, f"{o} differs between {base} and {d}"
            except FileNotFoundError:
                return False, f"{o} missing in {d}"
    return True, None
