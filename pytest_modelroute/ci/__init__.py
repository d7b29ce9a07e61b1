"""CI integration: the gate's reference from git, PR comments and job summaries."""
