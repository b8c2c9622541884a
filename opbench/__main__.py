import time

started = time.perf_counter()  # a job's first instant in opbench (opbench.phases.now's clock), before any import

import sys  # noqa: E402

from opbench.cli import main  # noqa: E402

sys.exit(main(started=started))
