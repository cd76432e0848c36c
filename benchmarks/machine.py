"""What the report says about the machine, and how busy other processes kept it."""

from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata
from pathlib import Path

from benchmarks.peers import CPU_COUNT

PACKAGES = ("paralleltask", "langgraph", "loky", "cloudpickle", "joblib", "numpy", "ray")
BUSY_FIELDS = (0, 1, 2, 5, 6)  # user nice system irq softirq (of the "cpu" line of /proc/stat)
STEAL_FIELD = 7


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_description(command: str) -> dict[str, str]:
    return {
        "command": f"`{command}`",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": f"{cpu_model()}, {CPU_COUNT} usable cores (os.cpu_count() = {os.cpu_count()})",
        "Python": f"{platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
        "packages": ", ".join(f"{name} {package_version(name)}" for name in PACKAGES),
        "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}",
    }


def _system_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of all CPUs since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields[i] for i in BUSY_FIELDS), fields[STEAL_FIELD]


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, utime + stime ticks), for every process still there."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) "
        table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def _own_ticks() -> int:
    """CPU ticks of this process, its live descendants, and its reaped children."""
    table = _process_table()
    ours, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in table.items() if ppid == parent]
        ours.update(children)
        frontier += children
    reaped = os.times().children_user + os.times().children_system
    return sum(table[pid][1] for pid in ours if pid in table) + round(
        reaped * os.sysconf("SC_CLK_TCK")
    )


class ForeignCpuMeter:
    """How many cores, on average, processes other than ours used (and the hypervisor stole)."""

    def __init__(self):
        self.available = Path("/proc/stat").exists()
        if self.available:
            self._start = (*_system_ticks(), _own_ticks(), os.times().elapsed)

    def describe(self) -> tuple[str, float]:
        """A line for the report, and the foreign cores (0.0 when it cannot tell)."""
        if not self.available:
            return "unknown (no /proc)", 0.0
        busy0, steal0, own0, wall0 = self._start
        busy1, steal1 = _system_ticks()
        own1, wall1 = _own_ticks(), os.times().elapsed
        per_second = os.sysconf("SC_CLK_TCK") * (wall1 - wall0)
        foreign = max(0.0, ((busy1 - busy0) - (own1 - own0)) / per_second)
        steal = (steal1 - steal0) / per_second
        text = f"{foreign:.2f} cores used by other processes, {steal:.2f} stolen by the hypervisor"
        return text, foreign + steal
