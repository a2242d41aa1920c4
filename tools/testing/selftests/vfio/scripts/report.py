#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge the console logs of test guests.

report.py LOG...  (each log named SCENARIO.log)

For every guest: each test program's TAP must have a plan and as many
results as planned; the guest must reach its end marker; the console must
hold no kernel splat (oops, WARNING, BUG, KASAN, lockdep, kmemleak report).
Prints one TAP-like line per test case and per check, the splats, and
returns the counts on the last line as "P F S".
"""
import re
import sys

SPLAT = re.compile(
    r"(Oops|WARNING:|BUG:|KASAN:|UBSAN:|Kernel panic|general protection fault"
    r"|unreferenced object|INFO: task .* blocked|possible recursive locking"
    r"|possible circular locking|inconsistent lock state|detected stalls)")
RESULT = re.compile(r"^(ok|not ok) (\d+) ([^#]*?)\s*(#.*)?$")
PLAN = re.compile(r"^1\.\.(\d+)$")

passed = failed = skipped = 0


def emit(ok, name, why=""):
    global passed, failed, skipped
    if ok == "skip":
        skipped += 1
        print(f"ok {name} # SKIP {why}")
    elif ok:
        passed += 1
        print(f"ok {name}")
    else:
        failed += 1
        print(f"not ok {name}{' # ' + why if why else ''}")


def judge(path):
    scenario = path.rsplit("/", 1)[-1].removesuffix(".log")
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError as e:
        emit(False, f"{scenario}: console log", str(e))
        return
    prog, plan, results, done, splat_at = None, None, 0, False, []
    for i, raw in enumerate(lines):
        line = re.sub(r"^\[\s*\d+\.\d+\]\s?", "", raw)
        if SPLAT.search(line):
            splat_at.append(i)
        if line.startswith("### BEGIN "):
            prog, plan, results = line.split()[2], None, 0
        elif line.startswith("### END ") and prog:
            if plan is None:
                emit(False, f"{scenario}: {prog}", "no TAP plan")
            elif results != plan:
                emit(False, f"{scenario}: {prog}", f"{results} of {plan} results")
            if not line.endswith("rc=0") and not line.endswith("rc=4"):
                # kselftest exits 4 when everything was skipped
                emit(False, f"{scenario}: {prog} exit status", line.split()[-1])
            prog = None
        elif line == "### DONE":
            done = True
        elif line.startswith("### ERROR"):
            emit(False, f"{scenario}: guest set-up", line[10:])
        elif prog:
            m = PLAN.match(line)
            if m:
                plan = int(m.group(1))
                continue
            m = RESULT.match(line)
            if m:
                results += 1
                name = f"{scenario}: {m.group(3)}"
                skip = re.search(r"#\s*SKIP\s*(.*)", m.group(4) or "")
                if skip and m.group(1) == "ok":
                    emit("skip", name, skip.group(1))
                else:
                    emit(m.group(1) == "ok", name)
    if prog:
        emit(False, f"{scenario}: {prog}", "did not finish")
    emit(done, f"{scenario}: guest reached its end marker",
         "" if done else "timeout or crash; last lines:\n# " +
         "\n# ".join(lines[-15:]))
    emit(not splat_at, f"{scenario}: no kernel splat",
         f"{len(splat_at)} report lines" if splat_at else "")
    for i in splat_at[:3]:
        print("# ---- splat in %s, console line %d ----" % (scenario, i + 1))
        for l in lines[max(0, i - 2):i + 40]:
            print("# " + l)


for p in sys.argv[1:]:
    judge(p)
print(passed, failed, skipped)
