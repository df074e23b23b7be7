#!/usr/bin/env python3
"""Where the time of TimerScale's KQueue add and delete phases goes, from a perf profile.

    cd Benchmarks
    perf record -k CLOCK_MONOTONIC -e cpu-clock -F 4000 -g -o perf.data \
        .build/release/TimerScale --child kqueue 1000000 > child.out
    perf script -i perf.data -F time,ip,sym --ns > perf.txt
    python3 Scripts/timer_profile.py child.out perf.txt

The child prints one RESULT line whose fields 16-19 are the CLOCK_MONOTONIC start and end of
the add and delete phases; `-k CLOCK_MONOTONIC` gives perf's samples the same clock. Each
cpu-clock sample is 1/F s of CPU time; a sample goes to the first category, in the order
below, whose pattern matches any frame of its call stack, so nested costs (a dictionary
resize inside an insert) are counted once, in the more specific category.
"""
import re
import sys

FREQUENCY = 4000  # must match perf record -F

# (category, regex on a frame's symbol), most specific first.
CATEGORIES = [
    ("dictionary resize (rehash of `others`)", r"copyOrMoveAndResize"),
    ("dictionary insert (link: setValue)", r"QueueStateV4link"),
    ("dictionary remove (unlink: removeValue)", r"QueueStateV6unlink"),
    ("dictionary lookup (register: lookup/find)", r"RawDictionaryStorageC4find|Hasher"),
    ("heap schedule (TimerHeap.schedule)", r"TimerHeapV8schedule"),
    ("heap remove (TimerHeap.remove)", r"TimerHeapV6remove"),
    ("knote slot allocate (KnoteTable.allocate)", r"KnoteTableV8allocate"),
    ("knote slot free (KnoteTable.free)", r"KnoteTableV4free"),
    ("clock_gettime (deadline = now + period)", r"clock_gettime"),
    ("timerfd_settime (re-arm)", r"timerfd_settime"),
    ("rest of kevent() (loop, lock, register/attach/drop bodies)", r"KQueue4CABIO6kevent|kevent_export"),
    ("harness outside kevent() (changelist fill, clock)", r"."),
]
PAGE_FAULT = re.compile(r"exc_page_fault")


def main():
    result = next(l for l in open(sys.argv[1]) if l.startswith("RESULT "))
    fields = [int(x) for x in result.split()[1:20]]
    n = fields[0]
    add_ns, delete_ns = fields[6], fields[7]
    add_start, add_end, delete_start, delete_end = fields[15:19]
    phases = {"add": (add_start, add_end, add_ns), "delete": (delete_start, delete_end, delete_ns)}

    counts = {p: {} for p in phases}
    faults = {p: 0 for p in phases}
    totals = {p: 0 for p in phases}
    compiled = [(name, re.compile(rx)) for name, rx in CATEGORIES]

    def flush(stamp, frames):
        if stamp is None:
            return
        for phase, (start, end, _) in phases.items():
            if start <= stamp <= end:
                totals[phase] += 1
                if any(PAGE_FAULT.search(f) for f in frames):
                    faults[phase] += 1
                for name, rx in compiled:
                    if any(rx.search(f) for f in frames):
                        counts[phase][name] = counts[phase].get(name, 0) + 1
                        break

    stamp, frames = None, []
    header = re.compile(r"^\s*(\d+)\.(\d{9}):")
    for line in open(sys.argv[2]):
        m = header.match(line)
        if m:
            flush(stamp, frames)
            stamp = int(m.group(1)) * 1_000_000_000 + int(m.group(2))
            frames = []
        elif line.strip():
            parts = line.split(None, 1)
            frames.append(parts[1].strip() if len(parts) > 1 else parts[0])
    flush(stamp, frames)

    per_sample = 1e9 / FREQUENCY
    for phase, (start, end, timed) in phases.items():
        print(f"{phase} phase: {n:,} timers, {(end - start) / n:.1f} ns/timer wall, "
              f"{timed / n:.1f} ns/timer inside kevent() (timed), {totals[phase]} samples "
              f"= {totals[phase] * per_sample / n:.1f} ns/timer of CPU")
        for name, _ in CATEGORIES:
            c = counts[phase].get(name, 0)
            if c:
                print(f"  {c * per_sample / n:7.1f} ns/timer  {100 * c / totals[phase]:5.1f}%  {name}")
        print(f"  (page faults, across the categories above: {faults[phase] * per_sample / n:.1f} ns/timer, "
              f"{100 * faults[phase] / max(totals[phase], 1):.1f}%)")


if __name__ == "__main__":
    main()
