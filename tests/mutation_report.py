"""``make mutation``'s summary: per core module, how many of mutmut's mutants the fast tests killed.

Run from the folder mutmut ran in (it reads ``mutants/geovae_core/<module>.py.meta``). A mutant
counts as killed when a test failed on it or it ran past its time limit (a mutant that never
ends is one the tests notice); the survivors are listed by name for ``mutmut show <name>``.
Not a test module (pytest collects ``test_*.py`` only).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

MODULES = ("losses", "models", "geometry", "metrics", "judges", "criteria", "verdicts", "data")
# mutmut's exit codes (mutmut.stats.status_by_exit_code): a failed test, pytest's internal error,
# a timeout (SIGXCPU), the worker's own timeout
KILLED = {1: "killed", 3: "killed", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout"}
NAMES = {0: "survived", None: "not checked", 5: "no tests", 33: "no tests", 34: "skipped", 2: "interrupted"}


def status(code) -> str:
    return KILLED.get(code) or NAMES.get(code, f"exit {code}")


def main() -> int:
    rows, survivors = [], []
    for module in MODULES:
        meta = Path("mutants") / "geovae_core" / f"{module}.py.meta"
        if not meta.exists():
            rows.append((module, 0, 0, Counter()))
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = Counter(status(code) for code in codes.values())
        killed = sum(counts[s] for s in ("killed", "timeout"))
        rows.append((module, killed, len(codes), counts))
        survivors += sorted(name for name, code in codes.items() if code not in KILLED)
    source = Path("SOURCE").read_text().strip() if Path("SOURCE").exists() else "an unknown commit"
    print(f"\nmutation score per module (the working tree copied at {source}; -dirty: with changes not committed):")
    for module, killed, total, counts in rows:
        share = f"{100 * killed / total:5.1f} %" if total else "    -  "
        checked = total - counts["not checked"]
        of_checked = ""
        if counts["not checked"]:  # a module none of whose mutants has run yet has no share of the checked
            of_checked = f"; {100 * killed / checked:5.1f} % of the {checked} checked" if checked else "; none checked"
        detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"  {module:9s} {share}  {killed:4d} / {total:<4d} killed{of_checked}  ({detail})")
    killed, total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    if total:
        print(f"  {'all':9s} {100 * killed / total:5.1f} %  {killed:4d} / {total:<4d} killed")
    if survivors:
        print(f"\n{len(survivors)} not killed (mutmut show <name> for the diff):")
        print("\n".join(f"  {name}" for name in survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
