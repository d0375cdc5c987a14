"""Small helpers every layer may use: text that leaves rnnbench names no path, timing marks, the machine."""
