"""``modelroute batch``: the batches a run left at the providers, and cancelling them.

A run interrupted while it waits on batches leaves them running (they are paid for
either way, and the next run collects their answers without submitting them again).
This command lists them; ``--cancel`` asks each provider to cancel them (a later run
still collects what they answered, and makes the rest directly).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cache import DEFAULT_CACHE_DIR
from .store import BatchStore


def describe(record: dict[str, Any]) -> str:
    age = time.time() - float(record.get("submitted_at") or time.time())
    which = (
        "batch being submitted when its run was killed (the next run looks it up)"
        if record.get("submitting")
        else f"batch {record['id']}"
    )
    return (
        f"{record['provider']} {which} ({record.get('alias', '?')}, "
        f"{len(record['items'])} requests, submitted {age / 60:.0f} min ago)"
    )


def pending_lines(cache_dir: Path) -> list[str]:
    """What a run interrupted while batches run says about them (nothing if none)."""
    records = [r for r in BatchStore(cache_dir).records() if not r.get("ended")]
    if not records:
        return []
    return [
        f"modelroute: {len(records)} batch(es) still running at the provider (not cancelled):",
        *(f"  {describe(r)}" for r in records),
        "modelroute: rerun the same command to collect their answers (nothing is submitted "
        f"again), or cancel them with: modelroute batch --cancel --cache-dir {cache_dir}",
    ]


def left_behind(cache_dir: Path) -> list[str]:
    """What a run that ended says of the batches in the store it did not collect: none of
    its requests was theirs (their model's settings changed since, or their cases were
    left out). They stay at the provider, paid for."""
    out = []
    for record in BatchStore(cache_dir).records():
        if record.get("ended"):
            continue
        cost = record.get("estimated_cost")
        priced = (
            f", ~${cost:.4f} at batch prices as estimated when submitted"
            if cost is not None
            else ""
        )
        out.append(
            f"{describe(record)}: not collected, as this run made none of its requests (its "
            "model's settings changed since, or its cases were left out); it stays at the "
            f"provider, paid for{priced}. A run making them collects its answers, or cancel "
            f"it: modelroute batch --cancel --cache-dir {cache_dir}"
        )
    return out


async def _cancel(record: dict[str, Any], store: BatchStore) -> tuple[str, bool]:
    """Cancel ``record``'s batch: what became of it, and whether that went as asked.

    A batch being submitted when its run was killed is cancelled only when the provider's
    listing proves it ours (OpenAI's metadata); an Anthropic batch of the same size and
    time may be another job's (only its results tell, once it ends): listed, not
    cancelled."""
    from ..config import ModelConfig
    from ..providers import builtin_providers
    from . import api_for

    model = ModelConfig(**record["model"])
    provider = builtin_providers()[model.provider](str(record.get("alias")), model, root=Path())
    try:
        api = api_for(provider)
        batch_id = record["id"]
        if record.get("submitting"):
            known = {r["id"] for r in store.records()}
            candidates = await api.find(record, known)
            if not candidates:
                return f"{describe(record)}: not at the provider, nothing to cancel", True
            vouched = [c for c in candidates if api.vouches(c, record)]
            if not vouched:
                return f"{describe(record)}: {_unproven(api, candidates)}", False
            batch_id = vouched[0].id
        status = await api.cancel(batch_id)
        if not record.get("submitting"):
            _mark_cancelled(store, record)
        return f"{describe(record)}: {status.state}", True
    finally:
        await provider.aclose()


def _unproven(api: Any, candidates: list[Any]) -> str:
    listed = ", ".join(f"{c.id} ({c.state})" for c in candidates)
    return (
        f"not cancelled: {listed} at the {api.title} may be it (as many requests, created "
        "then), or another job's in the same workspace; only its results tell, once it "
        "ends. The next run follows them and collects the one that is its own; cancel one "
        "at the provider yourself only if you know it is yours"
    )


def _mark_cancelled(store: BatchStore, record: dict[str, Any]) -> None:
    """Keep in the record that its batch was cancelled (a run's estimate then prices its
    requests at list price: they are made directly), unless a run collected it meanwhile."""
    current = store.load(record["provider"], record["id"])
    if current is not None and not current.get("ended"):
        store.save({**current, "cancelled_at": time.time()})


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="modelroute batch",
        description="List the batches runs left running at the providers; --cancel them.",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(DEFAULT_CACHE_DIR),
        help=f"the run's response cache directory (default ./{DEFAULT_CACHE_DIR})",
    )
    parser.add_argument(
        "--cancel",
        action="store_true",
        help="cancel them (needs the models' API keys; the next run collects what they answered)",
    )
    args = parser.parse_args(list(argv))
    from ..errors import ProviderError

    if not args.cache_dir.is_dir():  # a mistyped path is not "nothing in flight"
        print(f"modelroute batch: no cache directory {args.cache_dir}", file=sys.stderr)
        return 2
    store = BatchStore(args.cache_dir)
    records = [r for r in store.records() if not r.get("ended")]
    if not records:
        print(f"modelroute: no batch in flight in {args.cache_dir}")
        return 0
    status = 0
    for record in records:
        if not args.cancel:
            print(describe(record))
            continue
        try:
            line, done = asyncio.run(_cancel(record, store))
            print(line)
            status = status if done else 1
        except (ProviderError, ValueError, KeyError) as exc:
            print(f"{describe(record)}: cannot cancel: {exc}")
            status = 1
    return status
