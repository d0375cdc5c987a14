"""rnnbench performance benchmarks: each measures a baseline and a subject in the same run, interleaved.

Run from the repository root: ``python -m benchmarks`` (``--help`` for the options). Modules:

* ``cells``          forward+backward time of every registered cell against ``torch.nn.LSTM``, and the
                     gate GEMMs' GFLOP/s against the machine's sgemm
* ``harness``        per-trial overhead and start-up of ``rnnbench sweep`` against a plain Optuna loop
* ``logging_tax``    training step time with rnnbench's MLflow tracking against none
* ``parallel``       throughput of 2 concurrent sweep trials against 1
* ``time_to_target`` wall-clock of TPE+ASHA (the default sweep) to a target accuracy against random
                     search without early stopping
* ``leaderboard``    ``rnnbench leaderboard`` on a store growing to 5,400 trial runs (Greff's study), with
                     the importances kept by the sweep and recomputed
* ``gemm``           one step's float32 GEMM of the compiled kernels on oneDNN's brgemm against MKL, at
                     every step shape: which engine ``RNNBENCH_CPU_GEMM=auto`` should take on this host
* ``report``         targets, machine description, report.json and report.md

The benchmarks are not part of the test suite (``tests/test_benchmarks.py`` smoke-tests the cells one).
"""

BENCHMARKS = ("cells", "harness", "logging_tax", "parallel", "time_to_target", "leaderboard", "gemm")
