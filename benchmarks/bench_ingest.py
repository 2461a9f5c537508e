"""Ingest benchmark: a 10,000-item RSS file through the real pipeline into a fresh SQLite store.

    .venv/bin/python benchmarks/bench_ingest.py [--items 10000] [--repeat 3] [--keep DIR]

What it does:
1. writes one realistic News Arena RSS file (categories, media:content with captions,
   thumbnails, content:encoded of a few paragraphs, na: elements, entities, some
   Devanagari and emoji) into a temporary folder; the same seed gives the same file;
2. per repetition, two child processes, so generating the file never counts:
   - "ingest": only `distributor.ingest.pipeline.ingest_source` of that file into a
     fresh SQLite database, timed end to end; its ru_maxrss is the peak memory reported;
   - "phases": the same work split into read, parse and save (new articles), then a
     second save of the same articles (all unchanged), each timed;
3. prints one JSON object (medians over the repetitions, and every run) and a human line.

The settings are the shipped config with the database in the temporary folder and
ingest.max_bytes raised: 10,000 items with full bodies are ~25 MB, above the 10 MiB
default meant for real feeds (which carry 20 to 100 items).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

SEED = 20250704
SITE = "https://www.newsarenaindia.com"
# (section path, category as the CMS writes it)
SECTIONS = [
    ("nation", "Nation"), ("nation", "India"), ("states", "States"), ("states", "Regional"),
    ("international", "International"), ("world", "World"), ("politics", "Politics"),
    ("opinion", "Opinion"), ("opinion", "Column"), ("economy", "Economy"), ("business", "Markets"),
    ("sports", "Sports"), ("sports", "Cricket"), ("entertainment", "Entertainment"),
    ("entertainment", "Bollywood"), ("lifestyle", "Lifestyle"),
]
WORDS = (
    "government minister monsoon rain flood relief parliament session court order market "
    "rupee dollar crude index shares investors farmers sowing acreage railway trains "
    "station passengers students exams results team match series wicket captain coach "
    "film trailer release box office director actor city civic body residents police "
    "officials said on Friday after the first week of July amid concerns over rising costs"
).split()
HINDI = "मानसून सरकार बारिश बाढ़ राहत संसद अदालत बाज़ार किसान रेलवे छात्र टीम मैच फ़िल्म शहर पुलिस अधिकारी कहा".split()
DATELINES = ["New Delhi", "Mumbai", "Kolkata", "Chennai", "Bengaluru", "Moscow", "नई दिल्ली", "पटना", "Dubai"]
AUTHORS = ["News Arena Network", "Sports Desk", "Business Desk", "Political Bureau", "Priya Nair", "Aditya Menon"]
TAGS = ["Monsoon", "Railways", "Education", "IPL", "Sensex", "Kharif", "Assam", "Bihar", "OTT"]
NAMESPACES = (
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:na="https://www.newsarenaindia.com/ns/distributor/1.0"'
)


def _sentence(rng: random.Random, words: int) -> str:
    vocabulary = HINDI if rng.random() < 0.15 else WORDS
    text = " ".join(rng.choice(vocabulary) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _item(rng: random.Random, index: int, published: datetime) -> str:
    section, category = rng.choice(SECTIONS)
    devanagari = rng.random() < 0.2
    title_words = HINDI if devanagari else WORDS
    title = " ".join(rng.choice(title_words) for _ in range(rng.randint(6, 12)))
    if rng.random() < 0.1:
        title = "🏏 " + title + " &amp; more"
    slug = f"story-{index}"
    link = f"{SITE}/{section}/{slug}" + ("?utm_source=rss&amp;utm_medium=feed" if index % 3 == 0 else "")
    categories = [category] + (["Trending"] if index % 25 == 0 else []) + rng.sample(TAGS, rng.randint(0, 2))
    paragraphs = "\n".join(
        f"<p>{_sentence(rng, rng.randint(35, 80))} &#8220;{_sentence(rng, 8)}&#8221;</p>"
        for _ in range(rng.randint(4, 6))
    )
    parts = [
        "<item>",
        f"<title>{title}</title>",
        f"<link>{link}</link>",
        f'<guid isPermaLink="false">na-{index}</guid>',
        f"<description><![CDATA[<p>{_sentence(rng, rng.randint(20, 40))}</p>]]></description>",
        f"<pubDate>{format_datetime(published)}</pubDate>",
        *(f"<category>{escape(c)}</category>" for c in categories),
        f"<dc:creator>{rng.choice(AUTHORS)}</dc:creator>",
        f"<content:encoded><![CDATA[{paragraphs}]]></content:encoded>",
        f'<media:content url="{SITE}/images/article/{slug}.jpg" medium="image" type="image/jpeg">'
        f"<media:description>{escape(_sentence(rng, 12))}</media:description></media:content>",
        f'<media:thumbnail url="{SITE}/images/thumb/{slug}.jpg"/>',
        f"<na:dateline>{rng.choice(DATELINES)}</na:dateline>",
    ]
    if index % 2:
        parts.append(f"<na:readTime>{rng.randint(1, 6)} min read</na:readTime>")
    if index % 4 == 0:
        parts.append(f'<na:alsoRead href="/{section}/story-{index - 1}">{escape(_sentence(rng, 8))}</na:alsoRead>')
    parts.append("</item>")
    return "\n".join(parts)


def write_feed(path: Path, items: int) -> int:
    """Write the benchmark feed; returns its size in bytes."""
    rng = random.Random(SEED)
    start = datetime(2025, 7, 4, 20, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    with path.open("w", encoding="utf-8") as out:
        out.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" {NAMESPACES}>\n<channel>\n')
        out.write(f"<title>News Arena</title><link>{SITE}/</link><description>Benchmark feed</description>\n")
        for index in range(items):
            out.write(_item(rng, index, start - timedelta(minutes=7 * index)))
            out.write("\n")
        out.write("</channel>\n</rss>\n")
    return path.stat().st_size


# --- the measured part (child processes) -------------------------------------------------
def _settings(workdir: Path):
    from distributor.settings import IngestConfig, PathsConfig, Settings, load_settings

    base = load_settings(Path(__file__).resolve().parent.parent / "config" / "distributor.toml")
    ingest = IngestConfig.model_validate({**base.file.ingest.model_dump(), "max_bytes": 1024**3})
    file = base.file.model_copy(update={"paths": PathsConfig(var_dir=str(workdir / "var")), "ingest": ingest})
    return Settings(file, base.env, base.config_path)


def _store(settings):
    from distributor.store import Store

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url)
    store.migrate()
    return store


def child(mode: str, feed: Path, workdir: Path) -> dict:
    """Run one measurement in this (fresh) process and return its numbers."""
    settings = _settings(workdir)
    store = _store(settings)
    result: dict = {"mode": mode}
    if mode == "ingest":
        from distributor.ingest.pipeline import ingest_source

        started, cpu_started = time.perf_counter(), time.process_time()
        report = ingest_source(settings, store, str(feed), name="bench")
        result["seconds"] = time.perf_counter() - started
        result["cpu_seconds"] = time.process_time() - cpu_started
        result.update(new=len(report.new), rejected=len(report.rejected), error=report.error)
    else:
        from distributor.ingest.feeds import parse_feed
        from distributor.ingest.fetch import fetch
        from distributor.store.articles import save_articles
        from distributor.store.models import utcnow

        significant = settings.file.ingest.significant_fields
        marks = [(time.perf_counter(), time.process_time())]

        def mark() -> None:
            marks.append((time.perf_counter(), time.process_time()))

        fetched = fetch(str(feed), config=settings.file.ingest)
        mark()
        parsed = parse_feed(fetched.body, settings=settings, source="bench", base_url=fetched.base_url, now=utcnow())
        mark()
        save_articles(store, parsed.articles, significant_fields=significant)
        mark()
        second = save_articles(store, parsed.articles, significant_fields=significant)
        mark()
        for index, name in enumerate(("read", "parse", "save", "resave_unchanged")):
            result[f"{name}_seconds"] = marks[index + 1][0] - marks[index][0]
            result[f"{name}_cpu_seconds"] = marks[index + 1][1] - marks[index][1]
        result["articles"] = len(parsed.articles)
        result["unchanged"] = sum(1 for _, outcome in second if outcome == "unchanged")
    store.dispose()
    # Linux reports ru_maxrss in KiB.
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _run_child(mode: str, feed: Path, workdir: Path) -> dict:
    workdir.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(feed), str(workdir)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark child ({mode}) failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="items in the generated feed")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported")
    parser.add_argument("--keep", type=Path, help="write the feed and databases here and keep them")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "FEED", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        mode, feed, workdir = args.child
        print(json.dumps(child(mode, Path(feed), Path(workdir))))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        feed = root / "feed.xml"
        size = write_feed(feed, args.items)
        # Other work on the machine slows wall-clock numbers; CPU seconds much less so.
        load_before = os.getloadavg()[0]
        runs = []
        for run in range(args.repeat):
            ingest = _run_child("ingest", feed, root / f"run{run}-ingest")
            phases = _run_child("phases", feed, root / f"run{run}-phases")
            if ingest["new"] != args.items or ingest["error"]:
                raise SystemExit(f"ingest stored {ingest['new']} of {args.items} items: {ingest['error']}")
            runs.append({"ingest": ingest, "phases": phases})
        load_after = os.getloadavg()[0]

    def median(path: tuple[str, str]) -> float:
        return statistics.median(run[path[0]][path[1]] for run in runs)

    items = args.items
    seconds = median(("ingest", "seconds"))
    summary = {
        "items": items,
        "feed_bytes": size,
        "repeat": args.repeat,
        "ingest_seconds": round(seconds, 3),
        "ingest_items_per_second": round(items / seconds),
        "ingest_cpu_seconds": round(median(("ingest", "cpu_seconds")), 3),
        "ingest_items_per_cpu_second": round(items / median(("ingest", "cpu_seconds"))),
        "peak_rss_mib": round(median(("ingest", "peak_rss_mib")), 1),
        "read_seconds": round(median(("phases", "read_seconds")), 3),
        "parse_seconds": round(median(("phases", "parse_seconds")), 3),
        "parse_items_per_second": round(items / median(("phases", "parse_seconds"))),
        "save_new_seconds": round(median(("phases", "save_seconds")), 3),
        "save_new_items_per_second": round(items / median(("phases", "save_seconds"))),
        "resave_unchanged_seconds": round(median(("phases", "resave_unchanged_seconds")), 3),
        "parse_cpu_seconds": round(median(("phases", "parse_cpu_seconds")), 3),
        "save_new_cpu_seconds": round(median(("phases", "save_cpu_seconds")), 3),
        "load_average_1m": [round(load_before, 2), round(load_after, 2)],
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "runs": runs,
    }
    print(json.dumps(summary, indent=2))
    print(
        f"ingest of {items} items ({size / 1e6:.1f} MB): {summary['ingest_items_per_second']} items/s "
        f"end to end (median of {args.repeat}), peak RSS {summary['peak_rss_mib']} MiB; "
        f"parse {summary['parse_seconds']} s ({summary['parse_items_per_second']} items/s), "
        f"save {summary['save_new_seconds']} s ({summary['save_new_items_per_second']} items/s), "
        f"re-save unchanged {summary['resave_unchanged_seconds']} s; "
        f"{summary['ingest_items_per_cpu_second']} items per CPU second; "
        f"load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
