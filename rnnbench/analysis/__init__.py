"""What the runs say: the leaderboard, its statistics, set-ups, importance and the Odyssey study's findings."""
