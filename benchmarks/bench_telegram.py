"""Telegram flood-control benchmark: 50 channels, 500 posts, the shared rate limiter.

    .venv/bin/python benchmarks/bench_telegram.py [--repeat 3] [--workers 32]
        [--backends memory,redis] [--channel 20/6] [--overall 25/0.5]

What it does, per backend of the shared limiter (in process; Redis from REDIS_URL or
redis://127.0.0.1:6379/15 when reachable) and per repetition:
1. starts the fake Bot API server (tests/fakes/telegram_api.py) in a child process, with
   Telegram's own flood control switched on at exactly our limits: a message that
   arrives one too many within a window is answered 429;
2. renders 500 article posts (photo and text, Devanagari and emoji) for 50 channels,
   skewed as real channels are: 5 busy channels get 40 posts each, 15 get 10, 30 get 5,
   so the per-channel limit binds for the busy ones while the overall limit binds for all;
3. drains them with `--workers` threads sharing one limiter (`distributor.ratelimit`) and
   one `TelegramChannel` (python-telegram-bot, a fresh HTTP client per call). Each
   channel's posts go in order, one at a time. Slots are taken in priority order: a
   worker takes, among channels whose next post is due, the one with the most posts
   left, asks the limiter for a slot, and sends; a channel without a slot is due again
   when the limiter says its slot opens (a countdown retry, never a sleeping worker);
4. reads the arrival times the server recorded and reports: the most messages any
   channel got within one window of its limit, the most messages overall within one
   window of the overall limit (the "scaled second") and within one real second, 429s,
   the time to drain, the lower bound the limits allow, and throughput against the cap.

The limits are Telegram's (20 a minute per channel, 25 a second overall) with the
windows shortened so one run takes seconds: by default 20 per 6 s per channel and 25 per
0.5 s overall (50 messages a second). Prints one JSON object (medians per backend, and
every run) and a human line. Run on an idle machine for stable figures: the sender and
the fake server share the CPU.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.telegram_api import TOKEN  # noqa: E402

CHANNELS = 50
# (channels, posts each): 5*40 + 15*10 + 30*5 = 500
SHAPE = [(5, 40), (15, 10), (30, 5)]
SECTIONS = ["nation", "states", "international", "politics", "economy", "sports", "entertainment"]


# --- the fake server in its own process --------------------------------------------------


def _serve(conn) -> None:  # noqa: ANN001 - a multiprocessing Connection
    sys.path.insert(0, str(ROOT))
    from tests.fakes.telegram_api import FakeTelegram

    fake = FakeTelegram().start()
    conn.send(fake.base_url)
    while True:
        command, *args = conn.recv()
        if command == "reset":
            fake.reset()
            per_chat, overall = args
            fake.enforce_limits(per_chat=per_chat, overall=overall)
            conn.send("ok")
        elif command == "calls":
            conn.send([(c.method, c.chat_id, c.time, c.status) for c in fake.calls])
        else:
            fake.stop()
            conn.send("stopped")
            return


# --- measuring -----------------------------------------------------------------------------


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The most of `times` inside any half-open window [t, t + seconds)."""
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def lower_bound(counts: list[int], channel: tuple[int, float], overall: tuple[int, float]) -> float:
    """The shortest drain the limits allow (the first window's messages go at once)."""
    total = sum(counts)
    by_overall = (-(-total // overall[0]) - 1) * overall[1]
    by_channel = max((-(-n // channel[0]) - 1) * channel[1] for n in counts)
    return max(by_overall, by_channel)


# --- one run ---------------------------------------------------------------------------


def build_settings(base_url: str, channel: tuple[int, float], overall: tuple[int, float], var: Path):
    os.environ["TELEGRAM_BOT_TOKEN"] = TOKEN
    os.environ["TELEGRAM_API_BASE_URL"] = base_url
    from distributor.settings import ChannelConfig, PathsConfig, Settings, TelegramConfig, load_settings

    shipped = load_settings(ROOT / "config" / "distributor.toml")
    channels = {f"c{n:02d}": ChannelConfig(chat_id=f"@bench_channel_{n:02d}", instant=True) for n in range(CHANNELS)}
    telegram = TelegramConfig(
        channel_messages=channel[0],
        channel_period_seconds=channel[1],
        overall_messages=overall[0],
        overall_period_seconds=overall[1],
        rate_key_prefix=f"bench-telegram-{uuid.uuid4().hex[:8]}",
    )
    file = shipped.file.model_copy(update={"channels": channels, "telegram": telegram, "paths": PathsConfig(var_dir=str(var))})
    return Settings(file, shipped.env, shipped.config_path)


def build_posts(settings) -> list[tuple[str, str, object]]:  # noqa: ANN001
    """(channel, chat id, BotCall) for 500 posts, interleaved across channels."""
    from distributor.articles import Article
    from distributor.render.telegram import article_post

    now = datetime(2026, 11, 27, 6, 30, tzinfo=timezone.utc)
    queues: list[list] = []
    n = 0
    for count, each in SHAPE:
        for _ in range(count):
            name = f"c{n:02d}"
            chat = settings.channels[name].chat_id
            posts = []
            for i in range(each):
                article = Article(
                    key=f"{name}-{i}",
                    url=f"https://www.newsarenaindia.com/{SECTIONS[i % len(SECTIONS)]}/{name}-{i}",
                    title=f"संसद में बहस {i}: Parliament debates the monsoon relief package 🌧️",
                    section=SECTIONS[i % len(SECTIONS)],
                    published_at=now - timedelta(minutes=i),
                    standfirst="Opposition walks out as the government tables the bill; a vote is due on Friday.",
                    byline="News Arena Network",
                    dateline="New Delhi",
                    read_minutes=3,
                    image_url=f"https://img.newsarenaindia.com/{name}-{i}.jpg" if i % 2 else None,
                )
                posts.append((name, chat, article_post(settings, article)))
            queues.append(posts)
            n += 1
    # Round-robin, as posts arrive from many sources at once.
    return [p for group in itertools.zip_longest(*queues) for p in group if p is not None]


def make_limiter(backend: str, settings):  # noqa: ANN001
    from distributor.ratelimit import MemoryLimiter, Rate, RedisLimiter

    config = settings.file.telegram
    per_key = Rate(config.channel_messages, config.channel_period_seconds)
    overall = Rate(config.overall_messages, config.overall_period_seconds)
    if backend == "memory":
        return MemoryLimiter(per_key, overall, in_flight_seconds=config.request_seconds)
    return RedisLimiter.from_url(redis_url(), per_key, overall, prefix=config.rate_key_prefix,
                                 in_flight_seconds=config.request_seconds)


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"


def redis_available() -> bool:
    try:
        import redis

        redis.Redis.from_url(redis_url(), socket_connect_timeout=1).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


def drain(settings, backend: str, posts: list, workers: int) -> dict:  # noqa: ANN001
    """Send every post with `workers` threads sharing one limiter.

    Each channel's posts go in order, one at a time (a chat's next post waits for its
    previous one). Slots are taken in priority order: under the dispatch lock a worker
    takes, among the channels whose next post is due, the one with the most posts left
    (a busy channel is bound by its own window, so it must not wait behind light ones)
    and asks the limiter for a slot; it then sends outside the lock. A channel without a
    slot is due again when the limiter says its slot opens, as a Celery countdown retry.
    """
    from distributor.channels.telegram import TelegramChannel

    api = TelegramChannel.from_settings(settings)
    limiter = make_limiter(backend, settings)
    overall_period = settings.file.telegram.overall_period_seconds
    pending: dict[str, list] = {}
    for channel, chat, call in posts:
        pending.setdefault(channel, []).append((chat, call))
    for queue in pending.values():
        queue.reverse()  # pop() from the end takes the oldest
    # Idle channels and when their next post may be tried; a channel being sent is absent.
    due: dict[str, float] = {channel: 0.0 for channel in pending}
    lock = threading.Condition()
    state = {"done": 0, "slot_waits": 0, "refused": 0, "failed": [], "latencies": []}
    total = len(posts)

    def worker() -> None:
        while True:
            with lock:
                while True:
                    if state["done"] >= total:
                        lock.notify_all()
                        return
                    now = time.monotonic()
                    ready = sorted((c for c, at in due.items() if at <= now), key=lambda c: (-len(pending[c]), c))
                    permit = None
                    for channel in ready:
                        chat, call = pending[channel][-1]
                        permit, wait = limiter.try_acquire(str(chat))
                        if permit is not None:
                            del due[channel]
                            break
                        state["slot_waits"] += 1
                        due[channel] = now + wait
                        if wait <= overall_period:
                            # The overall window is full: every other channel would hear
                            # the same, so stop asking until it opens.
                            for other in ready:
                                due[other] = max(due.get(other, 0.0), now + wait)
                            break
                    if permit is not None:
                        break
                    lock.wait(timeout=max(min(due.values()) - time.monotonic(), 0.0005) if due else 0.05)
            began = time.perf_counter()
            try:
                result = api.call(chat, call)
            finally:
                limiter.complete(permit)
            with lock:
                state["latencies"].append(time.perf_counter() - began)
                if result.outcome == "retry_after":  # Telegram's flood control: hold the chat
                    state["refused"] += 1
                    limiter.hold(str(chat), result.retry_after)
                    due[channel] = time.monotonic() + result.retry_after
                elif result.outcome == "temporary":
                    due[channel] = time.monotonic()
                else:
                    if not result.ok:
                        state["failed"].append(f"{channel}: {result.outcome} {result.description}")
                    pending[channel].pop()
                    state["done"] += 1
                    if pending[channel]:
                        due[channel] = time.monotonic()
                lock.notify_all()

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if backend == "redis":
        for key in limiter.client.scan_iter(f"{settings.file.telegram.rate_key_prefix}:*"):
            limiter.client.delete(key)
    state["send_ms"] = statistics.median(state.pop("latencies")) * 1000
    return {"start": start, "finished": time.monotonic(), **state}


def run_once(conn, backend: str, args, channel, overall) -> dict:  # noqa: ANN001
    with tempfile.TemporaryDirectory() as tmp:
        settings = build_settings(args.base_url, channel, overall, Path(tmp))
        posts = build_posts(settings)
        conn.send(("reset", channel, overall))
        conn.recv()
        outcome = drain(settings, backend, posts, args.workers)
    conn.send(("calls",))
    calls = conn.recv()
    sent = [(chat, t) for method, chat, t, status in calls if method.startswith("send") and status == 200]
    answered_429 = sum(1 for _m, _c, _t, status in calls if status == 429)
    by_chat: dict[str, list[float]] = {}
    for chat, t in sent:
        by_chat.setdefault(str(chat), []).append(t)
    arrivals = [t for _, t in sent]
    drain_seconds = max(arrivals) - outcome["start"]
    counts = [each for count, each in SHAPE for _ in range(count)]
    bound = lower_bound(counts, channel, overall)
    cap = overall[0] / overall[1]
    return {
        "backend": backend,
        "posts": len(posts),
        "delivered": len(sent),
        "answered_429": answered_429,
        "failed": outcome["failed"],
        "slot_waits": outcome["slot_waits"],
        "answered_retry_after": outcome["refused"],
        "median_send_ms": round(outcome["send_ms"], 1),
        "max_per_channel_window": max(most_in_any_window(t, channel[1]) for t in by_chat.values()),
        "max_overall_window": most_in_any_window(arrivals, overall[1]),
        "peak_per_second": most_in_any_window(arrivals, 1.0),
        "drain_seconds": round(drain_seconds, 3),
        "lower_bound_seconds": round(bound, 3),
        "drain_vs_bound": round(drain_seconds / bound, 3),
        "throughput_per_second": round(len(sent) / drain_seconds, 1),
        "cap_per_second": cap,
        "throughput_vs_cap": round(len(sent) / drain_seconds / cap, 3),
    }


def parse_rate(text: str) -> tuple[int, float]:
    count, seconds = text.split("/")
    return int(count), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--backends", default="memory,redis")
    parser.add_argument("--channel", default="20/6", help="per-channel limit, messages/seconds")
    parser.add_argument("--overall", default="25/0.5", help="overall limit, messages/seconds")
    args = parser.parse_args()
    channel, overall = parse_rate(args.channel), parse_rate(args.overall)
    backends = [b for b in args.backends.split(",") if b]
    skipped = []
    if "redis" in backends and not redis_available():
        backends.remove("redis")
        skipped.append(f"redis: not reachable at {redis_url()}")

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    args.base_url = parent.recv()
    runs = []
    try:
        for _ in range(args.repeat):
            for backend in backends:
                runs.append(run_once(parent, backend, args, channel, overall))
    finally:
        parent.send(("stop",))
        parent.recv()
        server.join(timeout=10)

    keys = ["max_per_channel_window", "max_overall_window", "peak_per_second", "answered_429", "drain_seconds",
            "drain_vs_bound", "throughput_per_second", "throughput_vs_cap"]
    medians = {
        backend: {k: statistics.median(r[k] for r in runs if r["backend"] == backend) for k in keys}
        for backend in backends
    }
    worst = {
        "max_per_channel_window": max(r["max_per_channel_window"] for r in runs),
        "max_overall_window": max(r["max_overall_window"] for r in runs),
        "answered_429": sum(r["answered_429"] for r in runs),
        "failed": sum(len(r["failed"]) for r in runs),
    }
    report = {
        "benchmark": "telegram",
        "channels": CHANNELS,
        "posts": sum(c * e for c, e in SHAPE),
        "shape": [{"channels": c, "posts_each": e} for c, e in SHAPE],
        "limits": {"per_channel": {"messages": channel[0], "seconds": channel[1]},
                   "overall": {"messages": overall[0], "seconds": overall[1]}},
        "workers": args.workers,
        "repeat": args.repeat,
        "medians": medians,
        "worst_over_all_runs": worst,
        "skipped": skipped,
        "runs": runs,
    }
    print(json.dumps(report, indent=2))
    for backend, m in medians.items():
        print(
            f"{backend}: 500 posts to 50 channels drained in {m['drain_seconds']:.2f} s "
            f"({m['drain_vs_bound']:.2f}x the {runs[0]['lower_bound_seconds']:.2f} s the limits allow), "
            f"{m['throughput_per_second']:.1f} msg/s = {m['throughput_vs_cap']:.0%} of the {overall[0] / overall[1]:g}/s cap; "
            f"most per channel in {channel[1]:g} s: {worst['max_per_channel_window']} (limit {channel[0]}), "
            f"most overall in {overall[1]:g} s: {worst['max_overall_window']} (limit {overall[0]}), "
            f"429s: {worst['answered_429']}"
        )


if __name__ == "__main__":
    main()
