"""Who may call what, and what no request can break, measured over HTTP on the sandbox.

Runs what tests/e2e/test_security.py runs, with more cases: the authorization matrix (every
operation of the served OpenAPI document and the app events x every kind of caller, expected from
the permission table), the schema fuzz (schemathesis, valid and schema-breaking inputs, with every
caller's key) and the malformed-request corpus (with every caller's key). Writes
bench/results/security.json as a flat object of counts:

- `matrix_cells`, `matrix_operations`, `matrix_callers`: the matrix's size;
- `matrix_allowed`, `matrix_denied`: cells the table allows, and denies;
- `authz_holes`: cells the table denies that were not denied (must be 0);
- `authz_overdenied`: cells the table allows that were denied (should be 0);
- `schema_fuzz_cases`, `corpus_cases`: schemathesis cases sent, and malformed requests sent;
- `fuzz_cases`, `fuzz_5xx`: both together, and every reply with a 5xx among them and the matrix's
  (must be 0).
"""

from __future__ import annotations

import sys

from bench.common import FUNCTION_LOGS, ROOT, write_results
from pointbridge.sandbox import Sandbox
from tests.support.security import build_world, operations, run_corpus, run_fuzz, run_matrix

FUZZ_EXAMPLES = 5


def main() -> None:
    with Sandbox(template=ROOT / "template.yaml", schedules=False, pool_size=2, log_dir=FUNCTION_LOGS) as sb:
        world = build_world(sb)
        matrix = run_matrix(world)
        fuzz = run_fuzz(world, examples=FUZZ_EXAMPLES, negative=True)
        corpus = run_corpus(world, every_caller=True)
        figures: dict[str, float | int] = {
            "matrix_cells": len(matrix.cells),
            "matrix_operations": len(operations(sb)),
            "matrix_callers": len(world.callers),
            "matrix_allowed": sum(1 for cell in matrix.cells if cell.expected == "allow"),
            "matrix_denied": sum(1 for cell in matrix.cells if cell.expected == "deny"),
            "authz_holes": len(matrix.holes),
            "authz_overdenied": len(matrix.overdenied),
            "schema_fuzz_cases": fuzz.cases,
            "corpus_cases": corpus.cases,
            "fuzz_cases": fuzz.cases + corpus.cases,
            "fuzz_5xx": len(fuzz.server_errors) + len(corpus.server_errors) + len(matrix.server_errors),
        }
    for found in (*matrix.holes, *matrix.overdenied, *fuzz.server_errors, *corpus.server_errors):
        print(f"  ! {found}", file=sys.stderr)
    write_results("security", figures)


if __name__ == "__main__":
    main()
