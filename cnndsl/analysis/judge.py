"""Everything `check` and `lint` conclude about a compiled network beyond its shapes:
receptive-field alignment warnings, expectations, budgets and (for lint) lint rules."""

from __future__ import annotations

from ..diagnostics import Diagnostic, did_you_mean, warning
from ..source import Span
from .expect import check_budgets, check_expectations
from .figures import Figures
from .lint import RULES, lint
from .receptive import misaligned_merges

# Diagnostics that mean "the network compiles but fails its contract": exit 1, not 2.
FAILURE_CODES = frozenset({"E401", "E404"})


def judge(
    fig: Figures, budgets: dict | None = None, run_lint: bool = False, disabled: frozenset[str] = frozenset()
) -> list[Diagnostic]:
    net = fig.network
    out = misaligned_merges(net, fig.fields)
    out += check_expectations(fig)
    out += check_budgets(fig, budgets or {})
    if run_lint:
        for code in sorted(set(net.disabled) | set(disabled)):
            if code not in RULES:
                out.append(
                    warning(
                        "W303",
                        f"`disable {code}`: no lint rule has this code",
                        Span(net.path, 1, 1, 1, 1),
                        did_you_mean(code, RULES) or f"lint codes are {', '.join(RULES)}",
                    )
                )
        out += lint(fig, disabled)
    return out


def exit_code(diagnostics: list[Diagnostic]) -> int:
    """0 clean (warnings allowed), 1 failed expectations, budgets or error-level lint findings, 2 spec errors."""
    errors = [d for d in diagnostics if d.severity == "error"]
    if any(d.code not in FAILURE_CODES and not d.code.startswith("L") for d in errors):
        return 2
    return 1 if errors else 0
