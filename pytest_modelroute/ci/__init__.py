"""CI integration: the gate's reference from git, the PR comment and the job summary."""
