"""Figures computed from a task graph rather than timed: the list-schedule
bound of an LLM pipeline, and how well a build kept a server's slots busy
(from the server's timeline).

A graph here is what gen.LlmPipeline.expanded() returns: [(name,
makes_a_call, deps)] in dependency order. Calls take the server's delay,
command tasks take no time.
"""

import heapq
import random


def list_schedule(tasks, workers, delay, critical_first=True, times=None):
    """Makespan of greedy list scheduling of `tasks` on `workers` workers:
    every call takes exactly `delay`, every command task 0; a task is ready
    when all its dependencies are done; whenever a worker is free, the ready
    task with the longest remaining path (its own time and the longest chain
    after it: critical path first) starts, ties in declaration order.

    This is what a scheduler that knew the whole graph from the start could
    reach with `workers` slots; a real build learns a fan-out's size only
    when its list is written. With `critical_first` false, ready tasks start
    in declaration order instead (as planexe did before it started the critical
    path first): the difference
    between the two tells how much of a build's distance from the bound
    comes from the order it starts ready tasks in.

    `times` (by name) overrides what a call takes, not what the scheduler
    expects it to take (the priorities still count `delay` per call): see
    `sampled_schedule`."""
    dur = {n: (delay if call else 0.0) for n, call, _ in tasks}
    order = {n: i for i, (n, _, _) in enumerate(tasks)}
    succ = {n: [] for n in dur}
    waiting = {}
    for n, _, deps in tasks:
        deps = set(deps)
        waiting[n] = len(deps)
        for d in deps:
            succ[d].append(n)
    remaining = {}
    for n, _, _ in reversed(tasks):    # reverse dependency order
        remaining[n] = dur[n] + max((remaining[s] for s in succ[n]), default=0.0)
    if times:
        dur.update(times)

    def key(n):
        return (-remaining[n] if critical_first else 0, order[n], n)

    ready = [key(n) for n in dur if waiting[n] == 0]
    heapq.heapify(ready)
    running = []                       # (finish, order, name)
    t, free, done = 0.0, workers, 0
    while done < len(tasks):
        while ready and free:
            _, _, n = heapq.heappop(ready)
            free -= 1
            heapq.heappush(running, (t + dur[n], order[n], n))
        if not running:
            raise ValueError("list_schedule: the graph has a cycle or a missing task")
        # Everything that ends at the next finish time ends before any new
        # start, so a task it makes ready competes with the others then.
        t = running[0][0]
        while running and running[0][0] == t:
            _, _, n = heapq.heappop(running)
            free += 1
            done += 1
            for s in succ[n]:
                waiting[s] -= 1
                if waiting[s] == 0:
                    heapq.heappush(ready, key(s))
    return t


def sampled_schedule(tasks, workers, delay, measured, draws=200, seed=1):
    """The median makespan of `list_schedule` (critical path first, the
    whole graph known from the start) when each call takes a time drawn
    from `measured` (seconds: what the calls of a real build took, a few
    ms over `delay`) instead of exactly `delay`. Calls that end in lockstep
    let the bound start a fan-out's instances the moment they are ready,
    beside nothing else; with a few ms of spread, slots freed a moment
    before a heavy list is written go to lighter ready work, and the fan-out
    takes an extra wave. Even this clairvoyant scheduler pays that: the
    difference between planexe and this figure is what its own scheduling
    costs."""
    if not measured:
        return None
    rng = random.Random(seed)
    calls = [n for n, call, _ in tasks if call]
    spans = []
    for _ in range(draws):
        times = {n: rng.choice(measured) for n in calls}
        spans.append(list_schedule(tasks, workers, delay, times=times))
    spans.sort()
    return spans[len(spans) // 2]


def critical_path(tasks, delay):
    """Longest chain of calls × delay (command tasks 0): the bound with
    unlimited workers."""
    end = {}
    for n, call, deps in tasks:
        end[n] = max((end[d] for d in deps), default=0.0) + (delay if call else 0.0)
    return max(end.values())


def saturation(tasks, timeline, t0, t1, slots):
    """How well a build from t0 to t1 (seconds since the epoch) kept
    `slots` calls in flight at the server, from the server's timeline
    (entries with task, arrival, start, end; one per call of the build).

    A call task is *ready* from the moment all its dependencies are done
    (a call is done when its answer ends, a command task when its
    dependencies are: it takes no time in this view) until its own call
    ends; a call is *in flight* while it holds a server slot (start to
    end). Returns:

    - fraction: time(in flight ≥ slots and ready ≥ slots) / time(ready ≥
      slots): of the time there was work for every slot, the share during
      which every slot was busy (None when ready never reached `slots`);
    - effective: the mean number of calls in flight over [t0, t1];
    - peak_at_server: the most calls at the server at once, queued or in a
      slot (arrival to end): more than `slots` means the client sent more
      than its concurrency limit;
    - ready_s, saturated_s: the two times of the fraction.

    Raises KeyError naming a call task the timeline lacks."""
    by = {}
    for e in timeline:
        if e["task"] in by:
            raise KeyError(f"{e['task']} called the server twice")
        by[e["task"]] = e
    done, ready = {}, []
    for n, call, deps in tasks:
        since = max([t0, *(done[d] for d in deps)])
        if call:
            if n not in by:
                raise KeyError(f"no call of {n} in the server's timeline")
            end = by[n]["end"]
            ready.append((since, max(since, end)))
            done[n] = end
        else:
            done[n] = since

    # Sweep the events in time order; counts are constant between two.
    events = []
    for a, b in ready:
        events += [(a, 1, 0), (b, -1, 0)]
    for e in timeline:
        events += [(e["start"], 0, 1), (e["end"], 0, -1)]
    events.sort(key=lambda x: (x[0], x[1] + x[2]))   # ends before starts at a tie
    n_ready = n_flight = 0
    prev = t0
    ready_s = saturated_s = 0.0
    for t, dr, df in events:
        t = min(max(t, t0), t1)
        if t > prev:
            if n_ready >= slots:
                ready_s += t - prev
                if n_flight >= slots:
                    saturated_s += t - prev
            prev = t
        n_ready += dr
        n_flight += df

    busy = sum(max(0.0, min(e["end"], t1) - max(e["start"], t0)) for e in timeline)
    at_server = sorted([(e["arrival"], 1) for e in timeline] +
                       [(e["end"], -1) for e in timeline])
    peak = cur = 0
    for _, d in at_server:
        cur += d
        peak = max(peak, cur)
    return {"fraction": saturated_s / ready_s if ready_s > 0 else None,
            "ready_s": ready_s, "saturated_s": saturated_s,
            "effective": busy / (t1 - t0) if t1 > t0 else None,
            "peak_at_server": peak}
