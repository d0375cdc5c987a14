"""Everything that draws or writes a page: tables, figures, Markdown and HTML of the leaderboard and the study."""
