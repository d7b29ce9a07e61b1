"""Sharded runs: one suite measured by N CI jobs, merged into one exact verdict.

``--model-route-shard I/N`` measures a deterministic 1/N of the cases (``spec``, chosen by
a hash of each case's task and id) and writes, in its results file, what a merge needs
(``record``); ``--model-route-merge`` reads the shards' files, checks that they fit
together, and hands their results to the reporter, which decides the gate and writes the
reports as for one unsharded run (``merge``).
"""

from __future__ import annotations

from .spec import ShardSpec, parse_shard, shard_of

__all__ = ["ShardSpec", "parse_shard", "shard_of"]
