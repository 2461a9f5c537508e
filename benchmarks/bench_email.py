"""Email dispatch benchmark: one 40-article edition to N subscribers, end to end, to a local sink.

    .venv/bin/python benchmarks/bench_email.py [--sizes 10000,100000] [--repeat 1]
        [--naive 200] [--database-url postgresql://...]

Through the real code path: subscribers with varied section preferences in a real store
(SQLite file by default, PostgreSQL with --database-url), the run opened and prepared by
the engine, then `dispatch_run` = `create_deliveries` + every `send_batch` (claim, render
once per variant, per-recipient splice, parallel SMTP connections through
`SmtpChannel.send`, bulk ledger updates) to Postfix's `smtp-sink` on 127.0.0.1.

Each N runs in a fresh child process, so its peak RSS (VmHWM) is its own. In the same
run the script also measures:
- the sink's ceiling: a minimal pipelining client (one process per connection, the
  transaction's bytes built once) sending one real message over and over on as many
  connections as dispatch uses: the most any sender could push through this sink on this
  machine. Postfix's own C client `smtp-source` is run too, for reference; it writes
  the body a line at a time, so with 80 KB messages it is the slower of the two;
- the naive way on a sample: per recipient a full render (Jinja + premailer) and an
  email-package MIME message, sent over one connection.

smtp-sink comes from Debian's postfix package (`apt-get download postfix`, `dpkg -x`),
fetched once into benchmarks/.cache/ (git-ignored). aiosmtpd is no sink for this: it
parses every message and saturates near 300-500 messages/s here.

Prints one JSON object and a human line. Timings are wall-clock on a shared machine;
compare figures from the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
sys.path.insert(0, str(ROOT))

SLOT = datetime(2026, 11, 26, 1, 30, tzinfo=timezone.utc)  # a 07:00 Asia/Kolkata slot
SECTIONS = ["nation", "states", "international", "politics", "opinion", "economy", "sports", "entertainment"]
# Readers' section choices: half keep the default (every section); the rest pick from
# the combinations readers commonly make. 12 variants in all, each rendered once.
CHOICES = [
    ["sports"], ["economy"], ["nation", "politics"], ["entertainment"], ["international"],
    ["sports", "entertainment"], ["nation", "states"], ["economy", "politics", "opinion"],
    ["international", "economy"], ["states"], ["opinion"],
]


# --- smtp-sink -------------------------------------------------------------------------


def postfix_tools() -> Path:
    """The folder holding smtp-sink and smtp-source, fetched into the cache if missing."""
    tree = CACHE / "postfix"
    sbin = tree / "usr" / "sbin"
    if (sbin / "smtp-sink").exists():
        return sbin
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise SystemExit("smtp-sink missing and apt-get/dpkg unavailable: install Postfix's smtp-sink")
    download = CACHE / "download"
    download.mkdir(parents=True, exist_ok=True)
    # The cache ignores itself, as .pytest_cache does: nothing fetched is ever committed.
    (CACHE / ".gitignore").write_text("*\n")
    subprocess.run(["apt-get", "download", "postfix"], cwd=download, check=True, capture_output=True)
    [deb] = sorted(download.glob("postfix_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True, capture_output=True)
    return sbin


def _tool_env(sbin: Path) -> dict:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(sbin.parent / "lib" / "postfix")
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_sink(sbin: Path, port: int) -> subprocess.Popen:
    # -u: smtp-sink refuses to run as root without a user to drop to.
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(
        [str(sbin / "smtp-sink"), *user, f"127.0.0.1:{port}", "512"],
        env=_tool_env(sbin), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sink
        except OSError:
            time.sleep(0.05)
    sink.kill()
    raise SystemExit(f"smtp-sink did not start: {sink.stderr.read().decode() if sink.stderr else ''}")


def sink_ceiling_c(sbin: Path, port: int, size: int, connections: int, count: int) -> float:
    """Messages/s Postfix's C client `smtp-source` gets through, `size` bytes each."""
    start = time.perf_counter()
    subprocess.run(
        [str(sbin / "smtp-source"), "-d", "-s", str(connections), "-m", str(count), "-l", str(size),
         "-f", "bench@newsarenaindia.com", "-t", "reader@example.com", f"127.0.0.1:{port}"],
        env=_tool_env(sbin), check=True, capture_output=True,
    )
    return count / (time.perf_counter() - start)


def _read_reply(stream) -> bytes:  # noqa: ANN001 - a socket file
    """One SMTP reply (all its lines); its last line."""
    while True:
        line = stream.readline()
        if not line:
            raise ConnectionError("the sink closed the connection")
        if line[3:4] != b"-":
            return line


def _blast(args: tuple[int, bytes, int]) -> int:
    """A minimal pipelining client: the transaction's bytes are built once, then each
    message is two writes and four replies read; next to no client CPU per message."""
    from distributor.channels.smtp import dot_stuff

    port, data, count = args
    commands = b"MAIL FROM:<bench@newsarenaindia.com>\r\nRCPT TO:<reader@example.com>\r\nDATA\r\n"
    body = dot_stuff(data)
    with socket.create_connection(("127.0.0.1", port)) as sock, sock.makefile("rb") as stream:
        _read_reply(stream)
        sock.sendall(b"EHLO bench\r\n")
        _read_reply(stream)
        for _ in range(count):
            sock.sendall(commands)
            for _ in range(3):
                _read_reply(stream)
            sock.sendall(body)
            if not _read_reply(stream).startswith(b"250"):
                raise ConnectionError("the sink refused a message")
        sock.sendall(b"QUIT\r\n")
    return count


def sink_ceiling(port: int, data: bytes, connections: int, count: int) -> float:
    """Messages/s the sink takes from a minimal client, one process per connection, sending
    the same real message over and over: the most any sender could get through."""
    per = count // connections
    with multiprocessing.get_context("fork").Pool(connections) as pool:
        start = time.perf_counter()
        sent = sum(pool.map(_blast, [(port, data, per)] * connections))
        return sent / (time.perf_counter() - start)


# --- the world -------------------------------------------------------------------------


def _settings(workdir: Path):
    from distributor.settings import PathsConfig, Settings, load_settings

    base = load_settings(ROOT / "config" / "distributor.toml")
    return Settings(base.file.model_copy(update={"paths": PathsConfig(var_dir=str(workdir / "var"))}), base.env, base.config_path)


def _store(database_url: str | None, workdir: Path):
    from sqlalchemy import create_engine, text

    from distributor.store import Store

    if not database_url:
        return Store(f"sqlite:///{workdir / 'bench.db'}"), None
    schema = f"bench_{os.getpid()}"
    admin = create_engine(Store(database_url).url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in database_url else "?"
    return Store(f"{database_url}{sep}options=-csearch_path%3D{schema}"), (admin, schema)


def _drop(cleanup) -> None:  # noqa: ANN001
    if cleanup is None:
        return
    from sqlalchemy import text

    admin, schema = cleanup
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def articles_40() -> list:
    """40 synthetic articles in the morning window, five per section (the edition's max_articles)."""
    from distributor.articles import Article

    site = "https://www.newsarenaindia.com"
    found = []
    for i in range(40):
        slug = SECTIONS[i % len(SECTIONS)]
        found.append(
            Article(
                key=f"{site}/{slug}/story-{i}",
                url=f"{site}/{slug}/story-{i}",
                title=f"Story {i}: a {slug} headline of ordinary length about the day's events",
                section=slug,
                published_at=SLOT - timedelta(minutes=20 + 25 * i),
                standfirst="A standfirst of about two lines, as the site writes them, so the body has a realistic size.",
                byline="News Arena Network",
                dateline="New Delhi",
                image_url=f"{site}/images/story-{i}.jpg",
                image_caption="A caption for the picture",
                read_minutes=2 + i % 4,
                trending=i % 11 == 0,
            )
        )
    return found


def add_subscribers(store, count: int, seed: int = 42) -> None:
    from distributor.store.models import SubscriberRow

    rng = random.Random(seed)
    table = SubscriberRow.__table__
    chunk = 5000
    moment = SLOT - timedelta(days=30)
    for start in range(0, count, chunk):
        rows = [
            {
                "email": f"reader{i:07d}@example.com",
                "status": "confirmed",
                "sections": None if rng.random() < 0.5 else rng.choice(CHOICES),
                "editions": None,
                "timezone": "Asia/Kolkata",
                "format": "html",
                "name": f"Reader {i}" if i % 3 else "",
                "created_at": moment,
                "confirmed_at": moment,
                "status_changed_at": moment,
                "source": "import",
            }
            for i in range(start, min(start + chunk, count))
        ]
        with store.session() as session:
            session.execute(table.insert(), rows)


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def prepared_world(count: int, database_url: str | None, workdir: Path):
    from distributor import engine
    from distributor.store.articles import save_articles

    settings = _settings(workdir)
    store, cleanup = _store(database_url, workdir)
    store.migrate()
    save_articles(store, articles_40())
    add_subscribers(store, count)
    run, _ = engine.open_slot(settings, store, "morning", SLOT)
    prepared = engine.prepare_run(settings, store, run.id)
    assert prepared.ready, prepared.reason
    engine.mark_sending(store, run.id)
    return settings, store, cleanup, prepared.run


# --- children --------------------------------------------------------------------------


def child_dispatch(count: int, database_url: str | None) -> dict:
    """The real path: dispatch_run of one run to `count` subscribers."""
    import gc

    from distributor.delivery import email as dispatch

    with tempfile.TemporaryDirectory() as folder:
        settings, store, cleanup, run = prepared_world(count, database_url, Path(folder))
        try:
            gc.collect()
            rss_before = _rss_mb("VmRSS")
            start = time.perf_counter()
            report = dispatch.dispatch_run(settings, store, run.id)
            seconds = time.perf_counter() - start
            assert report.sent == count, dict(report)
            with store.session() as session:
                from sqlalchemy import func, select

                from distributor.store.models import DeliveryRow

                variants = session.scalar(select(func.count(func.distinct(DeliveryRow.variant))))
            return {
                "subscribers": count,
                "sent": report.sent,
                "batches": report.batches,
                "variants": variants,
                "seconds": round(seconds, 2),
                "messages_per_second": round(count / seconds),
                "rss_before_mb": round(rss_before, 1),
                "peak_rss_mb": round(_rss_mb("VmHWM"), 1),
                "database": store.dialect,
            }
        finally:
            store.dispose()
            _drop(cleanup)


def child_naive(count: int, port: int, out: Path) -> dict:
    """The naive way on a sample: full render + premailer + email-package MIME per recipient."""
    from email.message import EmailMessage
    from email.policy import SMTP as SMTP_POLICY

    from distributor.delivery.email import run_issue
    from distributor.render.email import Recipient, fill_html, fill_text, mailbox_from, render_variant
    from distributor.subscribers import preferences_url, unsubscribe_url

    with tempfile.TemporaryDirectory() as folder:
        settings, store, cleanup, run = prepared_world(count, None, Path(folder))
        try:
            issue = run_issue(settings, store, run)
            rng = random.Random(42)
            people = [(i + 1, f"reader{i:07d}@example.com", None if rng.random() < 0.5 else rng.choice(CHOICES)) for i in range(count)]
            # One real message of the fast path, for the Python blast of the sink.
            variant = render_variant(settings, issue, sections=None, run_id=run.id, now=SLOT)
            sample = variant.message(Recipient(email=people[0][1], unsubscribe_url=unsubscribe_url(settings, 1, people[0][1])))
            out.write_bytes(sample)
            sender = mailbox_from(settings)
            conn = smtplib.SMTP("127.0.0.1", port, local_hostname="bench")
            start = time.perf_counter()
            for subscriber_id, address, sections in people:
                person = Recipient(
                    email=address,
                    unsubscribe_url=unsubscribe_url(settings, subscriber_id, address),
                    preferences_url=preferences_url(settings, subscriber_id, address),
                )
                rendered = render_variant(settings, issue, sections=sections, run_id=run.id, now=SLOT)  # Jinja + premailer
                message = EmailMessage(policy=SMTP_POLICY)
                message["From"] = sender
                message["To"] = address
                message["Subject"] = rendered.subject
                message["List-Unsubscribe"] = f"<{person.unsubscribe_url}>"
                message.set_content(fill_text(rendered, person))
                message.add_alternative(fill_html(rendered, person), subtype="html")
                conn.sendmail("brief@newsarenaindia.com", [address], message.as_bytes())
            seconds = time.perf_counter() - start
            conn.quit()
            return {"sample": count, "seconds": round(seconds, 2), "messages_per_second": round(count / seconds, 1), "message_bytes": len(sample)}
        finally:
            store.dispose()
            _drop(cleanup)


def _child(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=os.environ)
    if done.returncode != 0:
        raise SystemExit(f"child {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="Comma-separated subscriber counts.")
    parser.add_argument("--repeat", type=int, default=1, help="Runs per size (the median is reported).")
    parser.add_argument("--naive", type=int, default=200, help="Sample size for the naive way.")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: a SQLite file).")
    parser.add_argument("--ceiling-messages", type=int, default=8000, help="Messages per sink-ceiling measurement.")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        mode, count = args.child[0], int(args.child[1])
        if mode == "dispatch":
            print(json.dumps(child_dispatch(count, args.database_url)))
        else:
            print(json.dumps(child_naive(count, int(args.child[2]), Path(args.child[3]))))
        return 0

    from distributor.settings import load_settings

    CONNECTIONS = load_settings().file.email.connections

    sbin = postfix_tools()
    port = free_port()
    sink = start_sink(sbin, port)
    os.environ["SMTP_URL"] = f"smtp://127.0.0.1:{port}?helo=bench"
    db = ["--database-url", args.database_url] if args.database_url else []
    try:
        with tempfile.TemporaryDirectory() as folder:
            sample = Path(folder) / "message.eml"
            naive = _child(["--child", "naive", str(args.naive), str(port), str(sample)])
            data = sample.read_bytes()
            ceiling = sink_ceiling(port, data, CONNECTIONS, args.ceiling_messages)
            ceiling_c = sink_ceiling_c(sbin, port, len(data), CONNECTIONS, args.ceiling_messages)
        runs: dict[int, list[dict]] = {}
        for size in [int(x) for x in args.sizes.split(",")]:
            runs[size] = [_child(["--child", "dispatch", str(size), *db]) for _ in range(args.repeat)]
    finally:
        sink.terminate()
        sink.wait(timeout=10)

    def med(size: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[size])

    sizes = sorted(runs)
    result = {
        "message_bytes": len(data),
        "connections": CONNECTIONS,
        "database": runs[sizes[0]][0]["database"],
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "sink_ceiling_mps": round(ceiling),
        "smtp_source_mps": round(ceiling_c),
        "naive": naive,
        "dispatch": {
            str(size): {
                "messages_per_second": med(size, "messages_per_second"),
                "seconds": med(size, "seconds"),
                "peak_rss_mb": med(size, "peak_rss_mb"),
                "runs": runs[size],
            }
            for size in sizes
        },
    }
    if len(sizes) >= 2:
        result["peak_rss_ratio_largest_to_smallest"] = round(med(sizes[-1], "peak_rss_mb") / med(sizes[0], "peak_rss_mb"), 3)
        result["speedup_vs_naive"] = round(med(sizes[-1], "messages_per_second") / naive["messages_per_second"])
    print(json.dumps(result, indent=2))
    parts = [f"{size:,}: {med(size, 'messages_per_second'):,.0f} msg/s, peak RSS {med(size, 'peak_rss_mb'):.0f} MB" for size in sizes]
    print(
        f"email dispatch ({result['database']}, {CONNECTIONS} connections, {len(data):,}-byte messages): "
        + "; ".join(parts)
        + f". Naive (render+premailer+MIME per recipient): {naive['messages_per_second']} msg/s."
        + f" Sink ceiling: {result['sink_ceiling_mps']:,} msg/s (minimal pipelining client, {CONNECTIONS} processes);"
        + f" smtp-source: {result['smtp_source_mps']:,} msg/s."
        + (f" RSS {sizes[-1]:,}/{sizes[0]:,} = {result['peak_rss_ratio_largest_to_smallest']}x." if len(sizes) >= 2 else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
