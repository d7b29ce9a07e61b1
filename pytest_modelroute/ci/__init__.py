"""CI integration: the PR comment, the job summary, the base revision of a pull request."""
