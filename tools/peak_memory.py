"""Peak memory of a command and every process it starts (Ray's raylet, GCS and workers
included), sampled every 0.5 s: the maximum over time of the summed RSS and of the summed PSS
(PSS splits shared pages between processes, so it does not double-count them).

    python -m debiasbench.tools.peak_memory -- python run_all.py --grid quick --data-root ../shared/data
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil


def tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def sample(processes: list[psutil.Process]) -> tuple[int, int, int]:
    rss = pss = 0
    for p in processes:
        try:
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        except psutil.Error:
            pass
    return rss, pss, len(processes)


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__)
        return 2
    start = time.time()
    child = subprocess.Popen(argv)
    root = psutil.Process(child.pid)
    peak_rss = peak_pss = peak_count = 0
    while child.poll() is None:
        rss, pss, count = sample(tree(root))
        peak_rss, peak_pss, peak_count = max(peak_rss, rss), max(peak_pss, pss), max(peak_count, count)
        time.sleep(0.5)
    print(
        f"[peak_memory] exit code {child.returncode}, wall {time.time() - start:.0f} s, peak summed RSS "
        f"{peak_rss / 2**30:.2f} GiB, peak summed PSS {peak_pss / 2**30:.2f} GiB, up to {peak_count} processes",
        file=sys.stderr,
    )
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
