"""The machine a benchmark ran on: CPU model, cores, memory, Python, OS."""

from __future__ import annotations

import os
import platform
import socket
import sys


def cpu_model() -> str:
    """The first ``model name`` line of /proc/cpuinfo (or what platform says)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def memory_bytes() -> int | None:
    """MemTotal from /proc/meminfo, in bytes."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def os_name() -> str:
    """PRETTY_NAME from /etc/os-release and the kernel release."""
    pretty = None
    try:
        with open("/etc/os-release", encoding="utf-8") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    pretty = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{pretty or platform.system()} (kernel {platform.release()})"


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews timings."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe() -> dict:
    memory = memory_bytes()
    return {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": os_name(),
        "arch": platform.machine(),
        "executable": sys.executable,
        "load_average_at_start": load_average(),
    }


def one_line(machine: dict) -> str:
    memory = f"{machine['memory_gib']} GiB" if machine.get("memory_gib") else "? GiB"
    return (f"{machine['cpu']}, {machine['cores']} cores, {memory}, "
            f"Python {machine['python']}, {machine['os']}")
