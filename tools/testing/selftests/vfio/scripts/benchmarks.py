#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Writes BENCHMARKS.md from the consoles of one run of the benchmark.

usage: benchmarks.py --runner RUN_SH --about TEXT SCENARIO=OUTPUT...

Each OUTPUT is what the benchmark printed in one guest (run.sh's
bench_guest); it goes into the page verbatim, and every figure the page
states in prose is computed here from its tables, so the page says what the
one run measured and nothing else.  The page is not edited by hand:
`run.sh benchmarks` writes it.
"""
import argparse
import sys
import textwrap


def bench_output(path):
    """The benchmark's lines."""
    with open(path, errors="replace") as f:
        out = f.read().splitlines()
    if not out:
        sys.exit(f"benchmarks.py: no benchmark output in {path}")
    return out


def tables(lines):
    """{title: (header, rows)} of every Markdown table, titled by the
    "## " line before it."""
    res, title = {}, None
    for line in lines:
        if line.startswith("## "):
            title = line[3:]
        elif line.startswith("|") and title is not None:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            if title not in res:
                res[title] = (cells, [])
            else:
                res[title][1].append(cells)
    return res


def med(cell):
    """The median of a "median [min, max]" cell, None for "-"."""
    try:
        return float(cell.split()[0])
    except (ValueError, IndexError):
        return None


def column(tabs, prefix, col):
    """{N: cell} of the column named col of the table whose title starts
    with prefix."""
    for title, (head, rows) in tabs.items():
        if title.startswith(prefix) and col in head:
            i = head.index(col)
            return {int(r[0]): r[i] for r in rows if r[0].isdigit()}
    return {}


def fill(text, first="", rest=""):
    """A paragraph wrapped at 76 columns; lines after a blank line (a code
    block in a list item) stay as they are."""
    head, sep, tail = text.partition("\n\n")
    return textwrap.fill(head, 76, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) + sep + tail


def g(x):
    return f"{x:.3g}"


def range_bullets(out):
    """What the range tables of one run show."""
    tabs = tables(out)
    b = []
    total_ratio = column(tabs, "total", "1 buf / N bufs")
    if total_ratio:
        big = {n: med(v) for n, v in total_ratio.items() if n >= 256 and med(v)}
        r1024 = med(total_ratio.get(1024, "-"))
        if big and r1024:
            b.append("**One N-range buffer against N one-range buffers**: the whole "
                     f"cycle (create, attach+map, unmap+detach, close) of one buffer "
                     f"costs {g(r1024)} of the N buffers' at N = 1024 "
                     f"({g(1 / r1024)} times cheaper); {g(1 / max(big.values()))} to "
                     f"{g(1 / min(big.values()))} times cheaper for N = "
                     f"{min(big)} to {max(big)}.")
    for kind, what in (("scattered", "scattered ranges against udmabuf's N items "
                        "of scattered memfd pages"),
                       ("in order", "contiguous ranges against udmabuf's N items "
                        "in the memfd's order")):
        ours_total = column(tabs, "total", "ours / udmabuf, " + kind)
        ours_map = column(tabs, "attach+map", "ours / udmabuf, " + kind)
        if not ours_total or not ours_map:
            continue
        tot = {n: med(v) for n, v in ours_total.items() if med(v)}
        mp = {n: med(v) for n, v in ours_map.items() if med(v)}
        slower = [n for n, v in sorted(mp.items()) if v > 1]
        verdict = ("no slower than udmabuf's at any N" if not slower else
                   "slower than udmabuf's at N = " + ", ".join(map(str, slower)))
        b.append(f"**Against udmabuf, {kind}** (ours / udmabuf, medians, {what}): "
                 "the whole cycle "
                 + ", ".join(f"{g(v)} at N={n}" for n, v in sorted(tot.items()))
                 + "; attach+map alone "
                 + ", ".join(f"{g(v)} at N={n}" for n, v in sorted(mp.items()))
                 + f": attach+map is {verdict}.")
    runs = [ln for ln in out if ln.startswith("udmabuf's memfd")]
    if runs:
        b.append("**How udmabuf's memfd lies** (an IOMMU maps one physically "
                 "contiguous run per call, for udmabuf as for us): " + runs[0] + ".")
    growth = [ln for ln in out if ln.startswith("growth ")]
    if growth:
        b.append("**Growth** of create + attach+map (the benchmark's own lines):\n\n"
                 + "\n".join("      " + ln for ln in growth))
    entries, inside = [], False
    for ln in out:
        if ln.startswith("## SG entries against the minimum"):
            inside = True
            continue
        if inside and (not ln or ln.startswith("## ")):
            break
        if inside:
            entries.append(ln)
    if entries:
        b.append("**SG entries against the fewest the importer could get** "
                 "(the benchmark's own lines):\n\n"
                 + "\n".join("      " + ln for ln in entries))
    rev = tabs.get("Revocation: K buffers x A importers, seconds (median of 5)")
    if rev:
        rows = {(int(r[0]), int(r[1])): r for r in rev[1]}
        lo, hi = rows.get((0, 1)), rows.get(max(rows))
        if lo and hi:
            resets = [float(r[2]) for r in rev[1]]
            b.append(f"**Revocation**: decode off + on with {max(rows)[0]} buffers x "
                     f"{max(rows)[1]} importers took {hi[3]} s against {lo[3]} s with "
                     f"no buffer; VFIO_DEVICE_RESET {g(min(resets))} to "
                     f"{g(max(resets))} s, whatever the buffers (the reset itself).")
    mem = [ln for ln in out if ln.startswith("per buffer") or ln.startswith("per range")]
    if mem:
        b.append("**Kernel memory** (MemTotal - MemFree deltas, an upper bound): "
                 + "; ".join(mem) + ".")
    return b


def cpu_bullets(out):
    tabs = tables(out)
    one = column(tabs, "CPU mappings", "read every page: 1 buffer")
    many = column(tabs, "CPU mappings", "read every page: N mmaps")
    mone = column(tabs, "CPU mappings", "map: 1 buffer")
    mmany = column(tabs, "CPU mappings", "map: N mmaps")
    vmas = column(tabs, "CPU mappings", "VMAs: 1 buffer / N mmaps")
    if not one:
        return []
    b = []
    ratio = {n: med(one[n]) / med(many[n]) for n in one
             if med(one.get(n, "-")) and med(many.get(n, "-"))}
    if ratio:
        worst = max(ratio, key=ratio.get)
        b.append("**Touching every page, one buffer / N mmaps of the region** "
                 "(one fault per page either way): "
                 + ", ".join(f"{g(v)} at N={n}" for n, v in sorted(ratio.items()))
                 + f"; the dearest is N = {worst}.")
    mr = {n: med(mmany[n]) / med(mone[n]) for n in mone
          if med(mone.get(n, "-")) and med(mmany.get(n, "-"))}
    if mr:
        b.append("**Mapping: N mmaps / one buffer** (create + one mmap against N "
                 "mmaps): " + ", ".join(f"{g(v)} at N={n}" for n, v in sorted(mr.items()))
                 + ".")
    if vmas:
        n = max(vmas)
        b.append(f"**VMAs at N = {n}**: {vmas[n]} (one buffer / N mmaps).")
    return b


def whole_bar_bullets(out):
    b = [ln for ln in out if ln.startswith("map ratio type1/MAP_FILE")]
    return ["**Giving a device the whole BAR**: " + b[0] + "."] if b else []


SCENARIOS = {
    "switch-noiommu": ("Bus addresses (switch-noiommu)",
                       "Two `pci-testdev,membar=64M` behind one PCIe switch, no IOMMU: "
                       "the importer gets PCI bus addresses. The CPU table reads the "
                       "`ivshmem-plain` memory BAR."),
    "rootport-iommu": ("Through the host bridge and an IOMMU (rootport-iommu)",
                       "The exporter and the importer on two root ports, VT-d, the "
                       "importer in a lazy DMA domain (`DMA-FQ`): one IOVA range per "
                       "buffer (`dma_iova_try_alloc()`, patch 0009)."),
    "switch-iommu": ("Behind a switch with an IOMMU (switch-iommu)",
                     "The switch of switch-noiommu with VT-d: P2P stays in the switch "
                     "(bus addresses); the whole-BAR table maps the 8 GiB `ivshmem-plain` "
                     "BAR through type1 and through `IOMMU_IOAS_MAP_FILE`."),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runner", required=True)
    ap.add_argument("--about", required=True)
    ap.add_argument("runs", nargs="+")
    a = ap.parse_args()
    page = ["# vfio-pci dma-buf benchmark: what a range costs", "",
            "<!-- Written by scripts/benchmarks.py from one run of the command below;"
            " not edited by hand. -->", "",
            fill("Command (builds the bench kernel, `configs/bench.config`: the test "
                 "kernel's config without debug options, and runs `vfio_dmabuf_bench` "
                 "in each guest below, one after another):"), "",
            f"    {a.runner} benchmarks", "",
            fill(a.about), "",
            fill("**Guests run under QEMU TCG emulation: absolute times mean little; "
            "compare ratios and growth within one table.** Variants: one buffer of "
            "N one-page ranges, scattered (every other page, no two ranges "
            "contiguous; past 8192 ranges they repeat in the 64 MiB BAR) or "
            "contiguous; N buffers of one page each; udmabuf `UDMABUF_CREATE_LIST` "
            "with N one-page items of a memfd, in the memfd's order or scattered (the "
            "even pages, then the odd ones), driven through the same test importer "
            "(`dmabuf_importer/`). Ratios are of medians: \"1 buf / N bufs\" of the "
            "scattered variant, \"ours / udmabuf\" like for like (scattered against "
            "scattered; contiguous against udmabuf in the memfd's order). The CPU table maps the same "
            "scattered pages once as an N-range buffer and N times as the region's "
            "own mmap, the two ways taking turns. Every statement under \"What it "
            "shows\" is computed from the run printed under it. Earlier "
            "measurements, before and after a change, are in the commit messages "
            "of those changes."), ""]
    failed = 0
    for run in a.runs:
        sc, log = run.split("=", 1)
        out = bench_output(log)
        title, about = SCENARIOS.get(sc, (sc, ""))
        checks = [ln for ln in out if "check failed" in ln]
        failed += len(checks) + sum(ln.startswith("not ok") for ln in out)
        bullets = range_bullets(out) + cpu_bullets(out) + whole_bar_bullets(out)
        if checks:
            bullets.append("**The benchmark's checks failed**: "
                           + "; ".join(c.lstrip("# ") for c in checks) + ".")
        page += [f"## {title}", "", fill(about), "",
                 f"    {a.runner} bench {sc}", "",
                 "### What it shows", ""]
        for bl in bullets:
            page.append(fill(bl, "* ", "  "))
        page += ["", "### The run", "", "```"] + out + ["```", ""]
    sys.stdout.write("\n".join(page))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
