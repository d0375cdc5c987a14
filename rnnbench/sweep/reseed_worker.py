"""A reseed's worker process: ``python -m rnnbench.sweep.reseed_worker PARENT_PID [PLUGIN_FILE ...]``
(``rnnbench.sweep.reseed_pool`` starts it and speaks to it)."""

import sys

from rnnbench.sweep.reseed_pool import serve

if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2:])
