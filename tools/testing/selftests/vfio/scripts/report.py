#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge the console logs of test guests.

report.py [--expected FILE] LOG...  (each log named SCENARIO.log)

For every guest: each test program's TAP must have a plan and as many
results as planned; the guest must reach its end marker; the console must
hold no kernel splat (oops, WARNING, BUG, KASAN, lockdep, kmemleak report,
hung task, soft lockup, RCU stall, the exporter's own report of importers
that do not let go, a debug facility turning itself off, dropped printk
messages, an allocation-failure dump, an IOMMU fault that no test announced
with a "### EXPECT-IOMMU-FAULT TEXT" line) and must show that kmemleak and
DMA-API debugging are on (on our kernel: the scenario "upstream" runs
Debian's upstream kernel, see scripts/oracle.sh);
the bytes vfio_dmabuf_data and vfio_dmabuf_iommufd left in the memory-backed
BAR ("### FILECHECK OFFSET LEN SEED X0" lines) must be in its backing file,
SCENARIO.ivshmem, read here after the guest stopped.  A program that skips
itself whole ("1..0 # SKIP REASON", as kselftest does) is one skip named
after it, as a program run the guest skipped ("### SKIP PROGRAM REASON").
With --expected (the test command passes
scripts/expected.txt), every program listed for the scenario must have run,
every test case listed for the program must have a result and every
result must be a listed test case, every skip must be listed with its
reason, every listed skip must have happened, and exit status 4 (all
skipped) is accepted only when every result of the program was a listed
skip.
Prints one TAP-like line per test case and per harness check, the splats,
and the counts on the last line as "P F S HP HF": test cases passed,
failed and skipped (a result of a test program, or a program the guest
skipped whole), then harness checks passed and failed (everything else:
end markers, the expected lists, splats, the backing file).
"""
import re
import sys

SPLAT = re.compile(
    r"(Oops|WARNING:|BUG:|KASAN:|UBSAN:|Kernel panic|general protection fault"
    r"|unreferenced object|possible recursive locking"
    r"|possible circular locking|inconsistent lock state"
    # hangs and stalls: hung-task detector, soft-lockup detector, RCU
    r"|blocked for more than|soft lockup|self-detected stall|detected stalls"
    r"|detected expedited stalls"
    # the exporter's own report of importers that do not let go
    r"|dma-buf importers still busy"
    # a debug facility that turned itself off checks nothing from then on
    r"|dma-debug disabled|DMA-API: debugging out of memory"
    r"|DMA-API: debugging disabled|Kernel memory leak detector disabled"
    r"|Kmemleak disabled|Cannot allocate a kmemleak_object"
    # lost console lines hide what they said; a failed allocation's dump
    r"|printk messages dropped|page allocation failure|invoked oom-killer)")
# An IOMMU fault; a test that provokes one announces it first.
IOMMU_FAULT = re.compile(r"DMAR: \[[^]]*\] (Request device \[[^]]*\] fault addr "
                         r"0x[0-9a-f]+)")
# Lines every guest's console must hold: the debug facilities are on (on
# our kernel), and the teardown was clean.
DEBUG_ON = {
    "kmemleak is on": "kmemleak: Kernel memory leak detector initialized",
    "DMA-API debugging is on": "DMA-API: debugging enabled by kernel config",
}
REQUIRED = {
    # guest/run_guest_tests.sh after the last program
    "teardown: no dma-buf left, module references as before, modules unload":
        "### TEARDOWN clean",
}
# Guests of upstream Linux (scripts/oracle.sh: Debian's kernel, no debug
# options): "*" in scripts/expected.txt is not theirs.
UPSTREAM = {"upstream"}
RESULT = re.compile(r"^(ok|not ok) (\d+) ([^#]*?)\s*(#.*)?$")
PLAN = re.compile(r"^1\.\.(\d+)$")
SKIP_ALL = re.compile(r"^1\.\.0\s*#\s*SKIP\s*(.*)$")

passed = failed = skipped = 0
checks_passed = checks_failed = 0
M64 = (1 << 64) - 1


def pat(seed, x):
    """Byte x of pattern seed: the same function as vfio_dmabuf_util.h."""
    h = (((x + 1) * 0x9E3779B97F4A7C15) & M64) ^ (seed << 32)
    h ^= h >> 29
    h = (h * 0xBF58476D1CE4E5B9) & M64
    h ^= h >> 32
    return h >> 56


def check_file(path, checks):
    """Checks each (offset, len, seed, x0) run; returns the first mismatch."""
    try:
        f = open(path, "rb")
    except OSError as e:
        return str(e)
    with f:
        for off, n, seed, x0 in sorted(checks):
            f.seek(off)
            data = f.read(n)
            for i in range(n):
                want = pat(seed, x0 + i)
                got = data[i] if i < len(data) else None
                if got != want:
                    return f"offset {off + i:#x}: {got}, want {want}"
    return ""


def load_expected(path):
    """{scenario or '*': (programs, {key: reason}, {program: cases})} from
    scripts/expected.txt."""
    exp = {}
    for raw in open(path):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kind, scen, rest = line.split(None, 2)
        for sc in scen.split(","):
            progs, skips, cases = exp.setdefault(sc, (set(), {}, {}))
            if kind == "program":
                progs.add(rest.strip())
            elif kind == "skip":
                key, why = rest.split(" # ", 1)
                skips[key.strip()] = why.strip()
            elif kind == "case":
                prog, name = rest.split(None, 1)
                cases.setdefault(prog, set()).add(name.strip())
            else:
                raise ValueError(f"{path}: unknown line: {raw!r}")
    return exp


def expected_for(exp, scenario):
    progs, skips, cases = set(), {}, {}
    for sc in ("*", scenario) if scenario not in UPSTREAM else (scenario,):
        p, k, c = exp.get(sc, (set(), {}, {}))
        progs |= p
        skips.update(k)
        for prog, names in c.items():
            cases.setdefault(prog, set()).update(names)
    return progs, skips, cases


def emit(ok, name, why="", case=False):
    """One line: a test case's result if case, else a harness check's."""
    global passed, failed, skipped, checks_passed, checks_failed
    if ok == "skip":
        assert case, name
        skipped += 1
        print(f"ok {name} # SKIP {why}")
    elif ok:
        if case:
            passed += 1
        else:
            checks_passed += 1
        print(f"ok {name}")
    else:
        if case:
            failed += 1
        else:
            checks_failed += 1
        print(f"not ok {name}{' # ' + why if why else ''}")


def judge(path, exp=None):
    scenario = path.rsplit("/", 1)[-1].removesuffix(".log")
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError as e:
        emit(False, f"{scenario}: console log", str(e))
        return
    prog, plan, results, done, splat_at = None, None, 0, False, []
    data_ran, checks = False, set()
    ran, seen_skips, names_of, skips_of, rc4 = set(), {}, {}, {}, set()
    skipped_whole = set()
    announced = set()

    def skip_whole(what, why):
        """A program run skipped whole: one skip, named after it."""
        emit("skip", f"{scenario}: {what}", why, case=True)
        seen_skips[what] = why.strip()

    for i, raw in enumerate(lines):
        line = re.sub(r"^\[\s*\d+\.\d+\]\s?", "", raw)
        fault = IOMMU_FAULT.search(line)
        if SPLAT.search(line) or (fault and fault.group(1) not in announced):
            splat_at.append(i)
        if line.startswith("### EXPECT-IOMMU-FAULT "):
            announced.add(line.split(" ", 2)[2].strip())
        elif line.startswith("### FILECHECK "):
            checks.add(tuple(int(v, 0) for v in line.split()[2:6]))
        elif line.startswith("### BEGIN "):
            prog, plan, results = line.split()[2], None, 0
            data_ran |= prog.startswith("vfio_dmabuf_data")
        elif line.startswith("### END ") and prog:
            if plan is None:
                emit(False, f"{scenario}: {prog}", "no TAP plan")
            elif results != plan:
                emit(False, f"{scenario}: {prog}", f"{results} of {plan} results")
            if not line.endswith("rc=0") and not line.endswith("rc=4"):
                # kselftest exits 4 when everything was skipped
                emit(False, f"{scenario}: {prog} exit status", line.split()[-1])
            if line.endswith("rc=4"):
                rc4.add(prog)
            ran.add(prog)
            prog = None
        elif line.startswith("### SKIP "):
            # a program run the guest skipped whole: "### SKIP PROG REASON"
            _, _, what, why = line.split(" ", 3)
            skip_whole(what, why)
        elif line == "### DONE":
            done = True
        elif line.startswith("### ERROR"):
            emit(False, f"{scenario}: guest", line[10:])
        elif prog:
            m = SKIP_ALL.match(line)
            if m:
                # the program skipped itself whole: one skip, its name
                plan = 0
                skip_whole(prog, m.group(1))
                skipped_whole.add(prog)
                continue
            m = PLAN.match(line)
            if m:
                plan = int(m.group(1))
                continue
            m = RESULT.match(line)
            if m:
                results += 1
                name = f"{scenario}: {m.group(3)}"
                if "@" in prog:
                    name += " @" + prog.split("@", 1)[1]
                key = m.group(3) + ("@" + prog.split("@", 1)[1]
                                    if "@" in prog else "")
                names_of.setdefault(prog, []).append(m.group(3))
                skip = re.search(r"#\s*SKIP\s*(.*)", m.group(4) or "")
                if skip and m.group(1) == "ok":
                    emit("skip", name, skip.group(1), case=True)
                    seen_skips[key] = skip.group(1).strip()
                    skips_of.setdefault(prog, []).append(key)
                else:
                    emit(m.group(1) == "ok", name, case=True)
    if prog:
        emit(False, f"{scenario}: {prog}", "did not finish")
    emit(done, f"{scenario}: guest reached its end marker",
         "" if done else "timeout or crash; last lines:\n# " +
         "\n# ".join(lines[-15:]))
    if exp is not None:
        check_expected(scenario, exp, ran, seen_skips, names_of, skips_of, rc4)
        check_cases(scenario, exp, ran - skipped_whole, names_of)
    if data_ran or checks:
        bad = check_file(path.removesuffix(".log") + ".ivshmem", checks) \
            if checks else "no FILECHECK line in the console"
        emit(not bad, f"{scenario}: the host finds the guest's DMA in the "
             f"ivshmem backing file ({len(checks)} runs)", bad)
    required = REQUIRED if scenario in UPSTREAM else {**DEBUG_ON, **REQUIRED}
    for what, needle in required.items():
        emit(any(needle in l for l in lines), f"{scenario}: {what}",
             f"no '{needle}' on the console")
    emit(not splat_at, f"{scenario}: no kernel splat",
         f"{len(splat_at)} report lines" if splat_at else "")
    for i in splat_at[:3]:
        print("# ---- splat in %s, console line %d ----" % (scenario, i + 1))
        for l in lines[max(0, i - 2):i + 40]:
            print("# " + l)


def check_cases(scenario, exp, ran, names_of):
    """Each program that ran gave a result for exactly its listed cases."""
    cases = expected_for(exp, scenario)[2]
    for p in sorted(ran):
        want = cases.get(p.split("@", 1)[0])
        got = names_of.get(p, [])
        if want is None:
            emit(False, f"{scenario}: {p}: its test cases are listed",
                 "no case line in scripts/expected.txt")
            continue
        missing = sorted(want - set(got))
        extra = sorted(set(got) - want)
        twice = sorted({n for n in got if got.count(n) > 1})
        emit(not missing and not extra and not twice,
             f"{scenario}: {p}: a result for each of its {len(want)} listed "
             "test cases",
             "; ".join(w for w in (
                 missing and "missing: " + ", ".join(missing),
                 extra and "not in scripts/expected.txt: " + ", ".join(extra),
                 twice and "more than one result: " + ", ".join(twice)) if w))


def check_expected(scenario, exp, ran, seen, names_of, skips_of, rc4):
    progs, skips, _ = expected_for(exp, scenario)
    for p in sorted(progs):
        emit(p in ran or p in seen, f"{scenario}: program {p} ran",
             "it did not run" if p not in seen else "")
    for key, why in sorted(seen.items()):
        want = skips.get(key)
        emit(want == why, f"{scenario}: skip of {key} is expected",
             "not in scripts/expected.txt" if want is None else
             f"listed with another reason: {want!r}")
    for key in sorted(set(skips) - set(seen)):
        emit(False, f"{scenario}: listed skip of {key} happened",
             "stale entry in scripts/expected.txt: no such skip")
    for p in sorted(rc4):
        listed = all(k in skips for k in skips_of.get(p, []))
        whole = len(skips_of.get(p, [])) == len(names_of.get(p, []))
        emit(listed and whole, f"{scenario}: {p} exit status 4 (all skipped)",
             "" if listed and whole else "not every result a listed skip")


args = sys.argv[1:]
expected = None
if args[:1] == ["--expected"]:
    expected = load_expected(args[1])
    args = args[2:]
for p in args:
    judge(p, expected)
print(passed, failed, skipped, checks_passed, checks_failed)
