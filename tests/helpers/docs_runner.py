"""Run one documentation page's examples in order, in the current directory (driven by tests/test_docs.py).

Usage: ``python docs_runner.py STEPS.json``, where the file holds a list of
``{"kind": "python" | "bash", "code": ..., "path": ..., "line": ...}``. Python
steps share one namespace, as a reader's session would, and are compiled with
the page's file name and line numbers, so a traceback points into the page.
Bash steps run with ``-euo pipefail``. The first failure stops the run with
exit code 1 and names the page and line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback


def main(steps_file: str) -> int:
    steps = json.loads(open(steps_file, encoding="utf-8").read())
    namespace: dict = {"__name__": "__docs__"}
    import torch  # one thread, as ETM_THREADS gives the etm commands: the tests share the CPU

    torch.set_num_threads(int(os.environ.get("ETM_THREADS", "1")))
    for step in steps:
        where = f"{step['path']}:{step['line']}"
        print(f"--- {where} ({step['kind']})", flush=True)
        if step["kind"] == "python":
            try:
                exec(compile("\n" * (step["line"] - 1) + step["code"], step["path"], "exec"), namespace)
            except BaseException:  # noqa: BLE001 - report any failure of the example, with its page line
                traceback.print_exc()
                print(f"FAILED: the Python example at {where}", file=sys.stderr)
                return 1
        else:
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", step["code"]])
            if proc.returncode != 0:
                print(f"FAILED: the bash example at {where} exited with {proc.returncode}", file=sys.stderr)
                return 1
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
