"""The machine description and the Markdown report (docs/performance.md)."""

import datetime
import os
import platform
import subprocess

TOOLS = ("planexe", "ninja", "make")


# ------------------------------------------------------------- machine ----

def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _filesystem(path):
    """The type of the filesystem holding path, from /proc/mounts."""
    best, fstype = "", "?"
    path = os.path.realpath(path)
    for line in _read("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) >= 3 and (path == parts[1] or path.startswith(parts[1].rstrip("/") + "/")):
            if len(parts[1]) >= len(best):
                best, fstype = parts[1], parts[2]
    return fstype


def machine(repo, tmp, tools):
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal:")), 0)

    def git(*a):
        r = subprocess.run(["git", "-C", repo, *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else "?"

    # Only what goes into the binary counts as "local changes" (not this
    # report, not bench/).
    dirty = git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "filesystem": _filesystem(tmp),
        "python": platform.python_version(),
        "commit": git("rev-parse", "--short", "HEAD") + (" (with local changes)" if dirty else ""),
        "versions": {t.name: t.version() for t in tools},
    }


# ------------------------------------------------------------ formatting --

def ms(s):
    """Seconds as a readable duration."""
    if s is None:
        return "—"
    if s < 1:
        return f"{s * 1000:.1f} ms"
    return f"{s:.2f} s"


def ratio(x):
    return "—" if x is None else f"{x:.2f}×"


def _row(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header, rows):
    return "\n".join([_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)])


def _best_peer(d):
    """(name, median) of the faster of ninja and make in {tool: summary}."""
    peers = [(n, d[n]["median"]) for n in ("ninja", "make") if n in d]
    return min(peers, key=lambda p: p[1]) if peers else (None, None)


def _reran(summary):
    """Re-run counts of a tool's runs, shown once when they all agree."""
    rr = sorted(set(summary["reran"]))
    return str(rr[0]) if len(rr) == 1 else "/".join(str(x) for x in summary["reran"])


# -------------------------------------------------------------- targets ---

def targets(res):
    """Rows of the targets table: measure, target, planexe, best peer, ratio, met?"""
    g = res.get("graphs", {})
    llm = res.get("llm", {})
    rows = []

    def missing(measure, target):
        rows.append([measure, target, "not run", "—", "—", "—"])

    def vs_peer(measure, target, key, phase, limit):
        if key not in g:
            return missing(measure, target)
        d = g[key][phase]
        p = d["planexe"]["median"]
        name, best = _best_peer(d)
        r = p / best
        rows.append([measure, target, ms(p), f"{ms(best)} ({name})", ratio(r),
                     "yes" if r <= limit else "**no**"])

    n10k = f"{g['layered-10k']['tasks']:,}" if "layered-10k" in g else "10,000"
    n1k = f"{g['layered-1k']['tasks']:,}" if "layered-1k" in g else "1,000"
    vs_peer(f"no-op, {n10k} tasks", "≤ 1.0× faster of ninja/make", "layered-10k", "noop", 1.0)
    vs_peer(f"no-op, {n1k} tasks", "≤ 1.0× faster of ninja/make", "layered-1k", "noop", 1.0)
    vs_peer(f"full build, {n1k} trivial tasks, -j2", "≤ 1.1× faster of ninja/make",
            "layered-1k", "full", 1.1)

    measure, target = f"touch-only, {n1k} tasks", "0 tasks re-run and ≤ 2× planexe's own no-op"
    if "layered-1k" in g:
        t = g["layered-1k"]["touch"]["planexe"]
        own = g["layered-1k"]["noop"]["planexe"]["median"]
        reran = max(t["reran"])
        r = t["median"] / own
        rows.append([measure, target, f"{ms(t['median'])}, {reran} re-run",
                     f"own no-op {ms(own)}", ratio(r),
                     "yes" if reran == 0 and r <= 2 else "**no**"])
    else:
        missing(measure, target)

    for key, label, jobs in (("llm-layered", "prompt tasks", None),
                             ("llm-planning", "planning-shaped", None)):
        if key not in llm:
            missing(label, "≤ 1.05× critical path")
            continue
        d = llm[key]
        p = d["tools"]["planexe"]
        name, best = _best_peer(d["tools"])
        measure = (f"{d['tasks']} {label} × {d['delay'] * 1000:g} ms, -j{d['jobs']}")
        rows.append([measure, f"≤ 1.05× critical path ({ms(d['bound'])})", ms(p["median"]),
                     f"{ms(best)} ({name}, {d['tools'][name]['ratio']:.3f}×)",
                     f"{p['ratio']:.3f}×", "yes" if p["ratio"] <= 1.05 else "**no**"])

    if "layered-10k" in g:
        s = g["layered-10k"]["status"]["median"]
        rows.append([f"`planexe status`, {n10k} tasks", "≤ 50 ms", ms(s), "—", "—",
                     "yes" if s <= 0.050 else "**no**"])
        b = g["layered-10k"].get("status_building", {}).get("median")
        if b is not None:
            rows.append([f"`planexe status` while a build runs, {n10k} tasks", "≤ 50 ms",
                         ms(b), "—", "—", "yes" if b <= 0.050 else "**no**"])
        d = g["layered-10k"]["noop"]
        p = _median_rss(d["planexe"])
        nj = _median_rss(d["ninja"])
        r = p / nj
        rows.append([f"peak RSS, no-op, {n10k} tasks", "≤ 1.5× ninja", mib(p),
                     f"{mib(nj)} (ninja)", ratio(r), "yes" if r <= 1.5 else "**no**"])
    else:
        missing(f"`planexe status`, {n10k} tasks", "≤ 50 ms")
        missing(f"peak RSS, no-op, {n10k} tasks", "≤ 1.5× ninja")

    f = res.get("fanout")
    if f:
        rows.append([f"planning with fan-outs ({f['calls']} calls), -j{f['jobs']}",
                     f"≤ 1.05× critical path ({ms(f['bound'])})", ms(f["fanout"]["median"]),
                     "—", f"{f['ratio']:.3f}×", "yes" if f["ratio"] <= 1.05 else "**no**"])
        rows.append(["same calls serial in one task per fan-out", "≥ 3× slower than fan-out",
                     ms(f["serial"]["median"]), "—", f"{f['speedup']:.1f}×",
                     "yes" if f["speedup"] >= 3 else "**no**"])

    o = res.get("overhead")
    if o:
        v = o["plain"]["per_call_ms"]
        rows.append([f"per-call overhead, {o['answer'] // 1024} KB answer",
                     "< 1 ms", f"{v:.2f} ms", "—", "—", "yes" if v < 1 else "**no**"])
    else:
        missing("per-call overhead, 10 KB answer", "< 1 ms")

    b = res.get("blake3")
    if b:
        v = b["gbps"]
        rows.append([f"blake3, {b['bytes'] / 1e9:g} GB file", "≥ 1 GB/s",
                     f"{v:.2f} GB/s" if v else "—", "—", "—",
                     "yes" if v and v >= 1 else "**no**"])
    else:
        missing("blake3, 1 GB file", "≥ 1 GB/s")
    return rows


def _median_rss(summary):
    xs = sorted(summary["peak_rss_kb"])
    return xs[len(xs) // 2]


def mib(kb):
    return f"{kb / 1024:.1f} MiB"


# --------------------------------------------------------------- render ---

def render(res):
    m = res["machine"]
    v = m["versions"]
    out = []
    w = out.append
    smoke = res["mode"] == "smoke"
    w("# Performance\n")
    w("Generated by `bench/run` (see [bench/README.md](../bench/README.md)); do not "
      "edit by hand. Figures are medians of "
      f"{res['reps']} run(s), the tools interleaved within each repetition "
      "(planexe, ninja, make, planexe, ...).\n")
    if smoke:
        w("**Smoke run: tiny sizes, one repetition. These figures prove the harness "
          "works and mean nothing else; the targets do not apply.**\n")
    w("## Machine\n")
    w(_table(["", ""], [
        ["date", m["date"]],
        ["cores", m["cores"]],
        ["CPU", m["cpu"]],
        ["memory", f"{m['memory_gib']} GiB"],
        ["OS", m["os"]],
        ["filesystem of the build folders", m["filesystem"]],
        ["planexe", f"{v.get('planexe')} (commit {m['commit']}, release build)"],
        ["ninja", v.get("ninja")],
        ["make", v.get("make")],
        ["python (harness)", m["python"]],
    ]))
    w("")

    w("## Targets\n")
    w(_table(["measure", "target", "planexe", "best peer", "ratio", "met?"], targets(res)))
    w("")
    w("*ratio* is planexe over the best peer (for the LLM-shaped rows, over the "
      "critical-path bound; for touch-only, over planexe's own no-op).\n")

    g = res.get("graphs", {})
    if g:
        w("## Command-task graphs\n")
        w("Every task runs `cksum IN1 IN2 ... > OUT`, the same command string for "
          "all three tools. Shapes: `chain` (each task reads the previous one), "
          "`wide` (1 → N → 1), `layered` (L layers of W tasks; layer 0 reads "
          "`src/root.txt`, every later task 2 or 3 outputs of the layer before, "
          "chosen with a fixed seed). One task in the middle also reads "
          "`src/mid.txt`.\n")
        w("- **full**: from a clean state, `-j2`, each run in a fresh folder "
          "with only the sources and the build file.\n"
          "- **full, in place**: the same in the same folder, right after "
          "deleting what the last build made (outputs, `.planexe/`, "
          "`.ninja_log`, `.ninja_deps`); on ext4 without a journal, files "
          "created right after many were deleted cost more to create "
          "(see bench/README.md).\n"
          "- **no-op**: everything up to date.\n"
          "- **touch**: `src/root.txt` gets a new mtime, same bytes. make and "
          "ninja re-run everything; planexe should re-run nothing.\n"
          "- **edit**: `src/mid.txt` gets new bytes; *expected* is the number of "
          "tasks that read it, directly or not.\n"
          "- **re-run**: tasks each tool ran (planexe: `start  ` lines on stderr; "
          "ninja: `[N/M]` lines; make: echoed recipes).\n")
        rows = []
        for key, d in g.items():
            for phase in ("full", "full_in_place", "noop", "touch", "edit"):
                if phase not in d:
                    continue
                cells = [f"{d['label']} ({d['tasks']:,} tasks)" if phase == "full" else "",
                         {"noop": "no-op", "full_in_place": "full, in place"}.get(phase, phase)]
                for t in TOOLS:
                    s = d[phase][t]
                    cells.append(f"{ms(s['median'])} ({_reran(s)})")
                name, best = _best_peer(d[phase])
                cells.append(ratio(d[phase]["planexe"]["median"] / best))
                cells.append(str(d["edit_expected"]) if phase == "edit" else
                             (str(d["tasks"]) if phase.startswith("full") else
                              ("0" if phase == "noop" else "planexe 0, others all")))
                rows.append(cells)
        w(_table(["graph", "build", "planexe (re-run)", "ninja (re-run)", "make (re-run)",
                  "planexe / best", "expected re-run"], rows))
        w("")
        rows = []
        for key, d in g.items():
            rows.append([d["label"],
                         "yes" if d["identical_full"] else f"**no**: {d['diff_full']}",
                         "yes" if d["identical_edit"] else f"**no**: {d['diff_edit']}",
                         ms(d["status"]["median"]),
                         ms(d.get("status_building", {}).get("median")),
                         *(mib(_median_rss(d["noop"][t])) for t in TOOLS)])
        w(_table(["graph", "outputs identical after full build",
                  "identical after the edits", "`planexe status`",
                  "`status` while building",
                  "no-op peak RSS planexe", "ninja", "make"], rows))
        w("")
        if res.get("exact_rss", True):
            w("Peak RSS is `/usr/bin/time -f %M` of a no-op build, median of "
              "separate runs.\n")
        else:
            w("**/usr/bin/time was missing: peak RSS is the `ru_maxrss` of the "
              "direct child, which includes the harness's own pre-exec size and "
              "is an upper bound only.**\n")

    llm = res.get("llm", {})
    if llm:
        w("## LLM-shaped pipelines\n")
        w("planexe runs prompt tasks (`stream = false`, `max_concurrency = 64`) against "
          "`bench/llm_server.py`, which answers every request after a fixed delay "
          "with a 10 KB answer; ninja and make run the same graph as "
          "`sleep DELAY; cksum ... > OUT`. The bound is the critical path "
          "(longest chain of tasks) × the delay.\n")
        rows = []
        for key, d in llm.items():
            cells = [d["label"], d["tasks"], f"-j{d['jobs']}",
                     f"{d['critical_path']} × {d['delay'] * 1000:g} ms = {ms(d['bound'])}"]
            for t in TOOLS:
                s = d["tools"][t]
                cells.append(f"{ms(s['median'])} ({s['ratio']:.3f}×)")
            rows.append(cells)
        w(_table(["graph", "tasks", "jobs", "critical-path bound",
                  "planexe", "ninja", "make"], rows))
        w("")
        w("The server's own handling time per call, delay included: " + ", ".join(
            f"{d['label']} {d['server_ms_per_call']:.1f} ms" for d in llm.values()) + ".\n")

    f = res.get("fanout")
    if f:
        w("## Planning-shaped pipeline with fan-outs\n")
        w(f"A spine of {f['spine']} prompt tasks with fan-outs of "
          f"{', '.join(str(n) for n in f['fanouts'])} items ({f['calls']} calls of "
          f"{f['delay'] * 1000:g} ms) at `-j{f['jobs']}`. The bound is one call per spine "
          f"step plus ceil(N / {f['jobs']}) rounds per fan-out. *serial* makes the same "
          "calls one after another inside one task per fan-out, as the Python "
          "predecessor does.\n")
        w(_table(["variant", "wall", "critical-path bound", "ratio", "target"], [
            ["fan-out (`foreach`)", ms(f["fanout"]["median"]), ms(f["bound"]),
             f"{f['ratio']:.3f}×", "≤ 1.05×"],
            ["serial, one task per fan-out", ms(f["serial"]["median"]), "", "", ""],
            ["serial / fan-out", "", "", f"{f['speedup']:.1f}×", "≥ 3×"],
        ]))
        w("")

    o = res.get("overhead")
    if o:
        w("## Per-call overhead\n")
        w(f"{o['n']} independent prompt tasks at `-j1` against a server that answers "
          f"at once with a {o['answer'] // 1024} KB answer. *per call* is (wall time − "
          "the server's own handling time, summed) / N; *net of start-up* also "
          "subtracts a no-op build of the same pipeline (process start, parsing, "
          "state loading).\n")
        rows = []
        for k, label in (("plain", "non-streamed"), ("stream", "streamed (SSE)")):
            s = o[k]
            rows.append([label, ms(s["wall_median"]), f"{s['wall_per_task_ms']:.2f} ms",
                         f"{s['per_call_ms']:.2f} ms", f"{s['net_of_startup_ms']:.2f} ms"])
        rows.append(["command tasks (`cksum`), for comparison", "",
                     f"{o['command_per_task_ms']:.2f} ms", "", ""])
        w(_table(["answers", "wall", "wall / N", "per call", "net of start-up"], rows))
        w("")

    b = res.get("blake3")
    if b:
        w("## blake3 throughput\n")
        w(f"One task whose input is a {b['bytes'] / 1e9:g} GB file. Its mtime is "
          "changed without changing its bytes, so `planexe build` must hash it "
          "(size equal, mtime different) to find it unchanged. Hashing time = that "
          "build − a no-op build. The file is in the page cache.\n")
        w(_table(["first build (hashes while recording)", "no-op", "after touch",
                  "tasks re-run after touch", "hashing", "throughput"], [[
                      ms(b["first_build"]), ms(_med(b["noop"])), ms(_med(b["touched"])),
                      max(b["reran"]), ms(b["hash_s"]),
                      f"{b['gbps']:.2f} GB/s" if b["gbps"] else "—"]]))
        w("")

    w("## Reproduce\n")
    w("```sh\nbench/run            # full run, rewrites this file\n"
      "bench/run --smoke    # tiny sizes, prints the report\n```\n")
    w(f"This run took {res.get('elapsed', 0):.0f} s.")
    return "\n".join(out) + "\n"


def _med(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
