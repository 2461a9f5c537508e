"""End-to-end dispatch benchmark through Celery: `schedule run-now` to the last ledger row settled.

    .venv/bin/python benchmarks/bench_pipeline.py [--sizes 20000,100000]
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--concurrency 2]
        [--ceiling-messages 20000]

What production runs, on one machine: a private redis-server (no persistence), PostgreSQL
(a schema of its own per size, dropped afterwards), one `distributor worker` with
`--concurrency` pool processes (2), and Postfix's `smtp-sink` as the relay. Per size N:
N confirmed subscribers (varied section choices, as in bench_email.py) and 40 articles are
written, the worker is started fresh (so its peak RSS is this size's), then the clock
starts and the operator's `distributor schedule run-now morning` runs; the clock stops
when every one of the run's N deliveries is settled in the ledger (sent, failed or
suppressed). Everything between is the real path: the CLI opens the run and queues
`build_run`, the worker builds the issue, writes the ledger, queues the batches and
sends them.

In the same run, Postfix's C client `smtp-source` sends messages of the same size to the
same sink over as many connections as the worker opens at once (pool processes x
`email.connections`): the ceiling the pipeline is compared with.

Reports msgs/s, the ratio to the ceiling, the build phase (run-now to all N rows in the
ledger), and the worker's peak RSS (VmHWM of the largest process, and of all together).
Prints one JSON object and a human line. Timings are wall-clock on a shared machine;
compare figures from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_email  # noqa: E402  (smtp-sink, subscribers and articles shared with it)

DEFAULT_POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SETTLED = ("sent", "failed", "suppressed")


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if not binary:
        raise SystemExit("redis-server is not installed")
    port = bench_email.free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    for _ in range(200):
        try:
            redis.Redis.from_url(url).ping()
            return process, url
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.05)
    process.kill()
    raise SystemExit("redis-server did not start")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the Celery main process and its pool)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU a live process has used (its own threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def wait_for_log(log: Path, text: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"worker not ready:\n{log.read_text(errors='replace')[-3000:] if log.exists() else ''}")


def ledger(store, run_id: int | None) -> tuple[int, int]:
    """(deliveries of the run, how many settled)."""
    from sqlalchemy import func, select

    from distributor.store.models import DeliveryRow

    if run_id is None:
        return 0, 0
    with store.session() as session:
        total = session.scalar(select(func.count()).where(DeliveryRow.run_id == run_id)) or 0
        settled = session.scalar(select(func.count()).where(DeliveryRow.run_id == run_id, DeliveryRow.status.in_(SETTLED))) or 0
    return total, settled


def only_run(store) -> int | None:
    from sqlalchemy import select

    from distributor.store.models import EditionRunRow

    with store.session() as session:
        return session.scalar(select(EditionRunRow.id).order_by(EditionRunRow.id))


def sample_message(store, run_id: int, workdir: Path) -> bytes:
    """One real message of the run, as the worker built them (its size is the ceiling's)."""
    from distributor.delivery.email import run_issue
    from distributor.render.email import Recipient, render_variant
    from distributor.runs import get_run
    from distributor.subscribers import preferences_url, unsubscribe_url

    settings = bench_email._settings(workdir)
    run = get_run(store, run_id)
    issue = run_issue(settings, store, run)
    variant = render_variant(settings, issue, sections=None, run_id=run_id, now=datetime.now(timezone.utc))
    email = "reader0000001@example.com"
    return variant.message(
        Recipient(email=email, unsubscribe_url=unsubscribe_url(settings, 1, email), preferences_url=preferences_url(settings, 1, email))
    )


def one_size(count: int, database_url: str, concurrency: int, env_base: dict, folder: Path) -> dict:
    """Seed, start a fresh worker, run-now, wait for the last settled row; the figures."""
    bench_email.SLOT = datetime.now(timezone.utc).replace(second=0, microsecond=0)  # articles in today's window
    store, cleanup = bench_email._store(database_url, folder)
    workdir = folder / f"n{count}"
    workdir.mkdir()
    worker = None
    try:
        store.migrate()
        from distributor.store.articles import save_articles

        save_articles(store, bench_email.articles_40())
        bench_email.add_subscribers(store, count)
        env = dict(env_base, DATABASE_URL=store.url.replace("postgresql+psycopg://", "postgresql://"))
        log = workdir / "worker.log"
        with open(log, "wb") as handle:
            worker = subprocess.Popen(
                [sys.executable, "-m", "distributor", "--log-level", "INFO", "worker", "--concurrency", str(concurrency)],
                cwd=workdir, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_for_log(log, " ready.", worker)
        cpu_before = sum(cpu_seconds(pid) for pid in process_tree(worker.pid))

        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "distributor", "schedule", "run-now", "morning"],
            cwd=workdir, env=env, check=True, capture_output=True, text=True,
        )
        cli_done = time.perf_counter() - start
        run_id, built, total, settled = None, None, 0, 0
        while settled < count:
            time.sleep(0.25)
            run_id = run_id or only_run(store)
            total, settled = ledger(store, run_id)
            if built is None and total == count:
                built = time.perf_counter() - start
            if time.perf_counter() - start > 3600:
                raise SystemExit(f"not settled after an hour: {settled}/{total}\n{log.read_text(errors='replace')[-3000:]}")
        seconds = time.perf_counter() - start
        tree = process_tree(worker.pid)
        rss = {pid: round(peak_rss_mb(pid), 1) for pid in tree}
        cpu = sum(cpu_seconds(pid) for pid in tree) - cpu_before
        from sqlalchemy import func, select

        from distributor.store.models import DeliveryRow

        with store.session() as session:
            statuses = dict(session.execute(select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)).all())
        message = sample_message(store, run_id, workdir)
        return {
            "subscribers": count,
            "seconds": round(seconds, 2),
            "messages_per_second": round(count / seconds),
            "cli_seconds": round(cli_done, 2),
            "build_seconds": round(built or seconds, 2),
            "send_messages_per_second": round(count / (seconds - (built or 0))) if seconds > (built or 0) else None,
            "statuses": statuses,
            # The worker's CPU over the run (pool and main process, every thread): with
            # `seconds` it tells a CPU-bound sender from one waiting on the machine.
            "worker_cpu_seconds": round(cpu, 1),
            "worker_cpu_ms_per_message": round(1000 * cpu / count, 3),
            "worker_processes": len(tree),
            "peak_rss_mb_largest_process": max(rss.values()),
            "peak_rss_mb_all_processes": round(sum(rss.values()), 1),
            "message_bytes": len(message),
        }
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        store.dispose()
        bench_email._drop(cleanup)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000", help="Comma-separated subscriber counts.")
    parser.add_argument("--database-url", default=DEFAULT_POSTGRES, help="PostgreSQL URL (a schema of its own is made).")
    parser.add_argument("--concurrency", type=int, default=2, help="Worker pool processes.")
    parser.add_argument("--ceiling-messages", type=int, default=20000, help="Messages smtp-source sends for the ceiling.")
    args = parser.parse_args(argv)

    from distributor.settings import load_settings

    connections = load_settings(ROOT / "config" / "distributor.toml").file.email.connections
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    sbin = bench_email.postfix_tools()
    port = bench_email.free_port()
    sink = bench_email.start_sink(sbin, port)
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        redis_server, redis_url = start_redis(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "SMTP_", "TELEGRAM_", "DISTRIBUTOR_"))}
        env.update(
            PYTHONPATH=str(ROOT),
            DISTRIBUTOR_CONFIG=str(ROOT / "config" / "distributor.toml"),
            REDIS_URL=redis_url,
            SMTP_URL=f"smtp://127.0.0.1:{port}?helo=bench",
            SECRET_KEY="bench-pipeline",
            PUBLIC_BASE_URL="https://www.newsarenaindia.com",
        )
        try:
            for size in [int(x) for x in args.sizes.split(",")]:
                results.append(one_size(size, args.database_url, args.concurrency, env, folder))
            sessions = args.concurrency * connections
            ceiling = bench_email.sink_ceiling_c(sbin, port, results[0]["message_bytes"], sessions, args.ceiling_messages)
        finally:
            redis_server.terminate()
            redis_server.wait(timeout=10)
            sink.terminate()
            sink.wait(timeout=10)

    for result in results:
        result["ratio_to_ceiling"] = round(result["messages_per_second"] / ceiling, 3)
    output = {
        "cpus": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "concurrency": args.concurrency,
        "connections_per_process": connections,
        "smtp_source_ceiling_mps": round(ceiling),
        "smtp_source_sessions": args.concurrency * connections,
        "runs": results,
    }
    if len(results) >= 2:
        output["peak_rss_ratio_largest_to_smallest"] = round(
            results[-1]["peak_rss_mb_largest_process"] / results[0]["peak_rss_mb_largest_process"], 3
        )
    print(json.dumps(output, indent=2))
    parts = [
        f"{r['subscribers']:,}: {r['messages_per_second']:,} msg/s ({r['ratio_to_ceiling']} of the ceiling), "
        f"{r['seconds']} s, peak RSS {r['peak_rss_mb_largest_process']:.0f} MiB"
        for r in results
    ]
    print(
        f"pipeline (Celery, {args.concurrency} worker processes, PostgreSQL, {results[0]['message_bytes']:,}-byte messages): "
        + "; ".join(parts)
        + f". smtp-source ceiling: {output['smtp_source_ceiling_mps']:,} msg/s over {output['smtp_source_sessions']} sessions."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
