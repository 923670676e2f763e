"""Whole-process `cnndsl check` wall time and peak RSS on a 150-layer spec and on ResNet-152.

Targets (issue 3): at most 0.3 s and 80 MB for ResNet-152 on the 2-core dev machine.
Targets ("hostile and careless input", class 5): near-linear in layers, 100k layers in at most
2 s and 300 MB; a spec that adds no layers but repeats for ever is refused (E107) just as fast.
For scale, the same run measures `python -c "import torch"`, the floor for any torch-based
tool (torchinfo must also build the model and run a forward pass).

    python benchmarks/check_speed.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEEP_150 = "network deep150\ninput 3x64x64\n[conv3x3(64, bias=false) -> bn -> relu]x50 -> gap -> fc(10)\n"
# The 100k-layer cases, and ResNet-152 with layer3 repeated 3,500 times (~35k layers).
LARGE = {
    "relu99k": "input 3x8x8\n[relu]x99000 -> gap -> fc(2)\n",
    "conv1x1_99k": "input 3x8x8\n[conv1x1(3)]x99990 -> gap -> fc(2)\n",
}
# Refused by the work budget: they add no layers (exit status 2 is expected).
HOSTILE = {
    "identity_2e62": "input 3x8x8\n[identity]x4611686018427387903 -> gap -> fc(2)\n",
    "nested_identity": "input 3x8x8\n[[[[identity]x1000]x1000]x1000]x1000 -> gap -> fc(2)\n",
}


def resnet152_35k() -> str:
    text = (ROOT / "specs/resnet152.cnn").read_text().replace("[bottleneck(256)]x35", "[bottleneck(256)]x3500")
    return "\n".join(line for line in text.splitlines() if not line.startswith("expect")) + "\n"


def measure(argv: list[str], repeat: int, ok: tuple[int, ...] = (0,)) -> tuple[float, float, float, float]:
    """(median wall s, min wall s, min CPU s (user + system), peak RSS in MB) of running argv as its own process.

    CPU time is reported too because wall time on a shared machine includes waiting for a core.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    times, cpu, rss = [], [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - start)
        cpu.append(usage.ru_utime + usage.ru_stime)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in ok:
            sys.exit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.read().decode()}")
        rss = max(rss, usage.ru_maxrss / 1024)  # Linux reports KiB
    return statistics.median(times), min(times), min(cpu), rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        deep = Path(tmp) / "deep150.cnn"
        deep.write_text(DEEP_150)
        specs = {**LARGE, "resnet152_35k": resnet152_35k(), **HOSTILE}
        for name, text in specs.items():
            (Path(tmp) / f"{name}.cnn").write_text(text)
        cases = [
            ("check deep150 (152 layers)", [py, "-m", "cnndsl", "check", str(deep)]),
            ("check resnet152 (515 layers)", [py, "-m", "cnndsl", "check", str(ROOT / "specs/resnet152.cnn")]),
            (
                "check resnet152 --format json",
                [py, "-m", "cnndsl", "check", "--format", "json", str(ROOT / "specs/resnet152.cnn")],
            ),
            ("lint resnet152", [py, "-m", "cnndsl", "lint", str(ROOT / "specs/resnet152.cnn")]),
            *((f"check {name}", [py, "-m", "cnndsl", "check", str(Path(tmp) / f"{name}.cnn")]) for name in specs),
            ("python -c pass", [py, "-c", "pass"]),
            ("python -c 'import torch'", [py, "-c", "import torch"]),
        ]
        print(
            f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        )
        print(f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'command':36} {'median s':>9} {'min s':>7} {'CPU s':>7} {'peak RSS MB':>12}")
        results = {}
        for name, argv in cases:
            refused = any(name.endswith(h) for h in HOSTILE)
            med, best, cpu, rss = measure(argv, args.repeat, (2,) if refused else (0,))
            results[name] = (med, rss)
            print(f"{name:36} {med:9.3f} {best:7.3f} {cpu:7.3f} {rss:12.1f}")
    med, rss = results["check resnet152 (515 layers)"]
    torch_med, torch_rss = results["python -c 'import torch'"]
    for name in ("check relu99k", "check conv1x1_99k"):
        big_med, big_rss = results[name]
        print(f"{name}: {big_med:.3f} s (target 2), {big_rss:.1f} MB (target 300)")
    print(
        f"resnet152 check: {med:.3f} s (target 0.3), {rss:.1f} MB (target 80); "
        f"import torch alone takes {torch_med / med:.1f}x the time and {torch_rss / rss:.1f}x the memory"
    )


if __name__ == "__main__":
    main()
