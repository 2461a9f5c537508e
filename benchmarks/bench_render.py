"""Email rendering benchmark: render once per variant, then splice per recipient.

    .venv/bin/python benchmarks/bench_render.py [--recipients 20000] [--repeat 5]

What it measures, on one 40-article edition built from the shipped sample feed
(config/samples/newsarena.xml, padded with synthetic articles to 40) with the shipped
config:
- `render_variant`: Jinja + premailer + MIME encoding of one variant; the first call
  (cold: templates compiled, CSS parsed), the median for the whole edition, and the
  median over several section sets;
- `premailer`: the inlining step alone on the same digest, for comparison;
- `message`: `RenderedVariant.message(recipient)` per recipient (distinct addresses,
  names and tokenised URLs), median per-message time over `--repeat` passes;
- `message_dkim`: the same with DKIM signing (RSA 2048, dkimpy; key made by the openssl
  CLI; skipped without it);
- `email_package`: what one message built with Python's email package costs (set_content
  + add_alternative + as_bytes), the thing `message` avoids per recipient;
- `naive`: the whole render (Jinja + premailer + MIME) per recipient, on a small sample.
Prints one JSON object and a human line. Ratios come from the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from distributor.articles import Article
from distributor.editions import Window, assemble, site_sections
from distributor.ingest.feeds import parse_feed
from distributor.render.email import Recipient, inline_css, render_variant
from distributor.settings import EmailConfig, Settings, load_settings

SITE = "https://www.newsarenaindia.com"
SECTION_SETS = [None, ("sports",), ("nation", "states"), ("economy", "politics", "opinion"), ("international",)]


def edition_of_40(settings: Settings):
    now = datetime(2025, 7, 4, 14, 0, tzinfo=UTC)
    body = (ROOT / "config" / "samples" / "newsarena.xml").read_bytes()
    articles = parse_feed(body, settings=settings, source="bench", base_url=SITE + "/", now=now).articles
    slugs = [s.slug for s in settings.sections]
    for i in range(max(0, 48 - len(articles))):
        slug = slugs[i % len(slugs)]
        articles.append(
            Article(
                key=f"{SITE}/{slug}/synthetic-{i}",
                url=f"{SITE}/{slug}/synthetic-{i}",
                title=f"Synthetic {slug} story number {i} with a headline of ordinary length",
                section=slug,
                published_at=now - timedelta(minutes=30 + i),
                standfirst="A standfirst of about two lines, as the site writes them, for a realistic body size.",
                byline="News Arena Network",
                dateline="New Delhi",
                image_url=f"{SITE}/images/synthetic-{i}.jpg",
                read_minutes=2,
            )
        )
    window = Window(now - timedelta(days=30), now + timedelta(minutes=1))
    config = settings.editions["morning"]
    return assemble(
        "morning", config, site_sections(settings), articles, window,
        section_limits={s.slug: s.limit for s in settings.sections}, fallback=settings.site.fallback_section,
    )


def recipients(n: int) -> list[Recipient]:
    return [
        Recipient(
            email=f"reader{i}@example.com",
            name=f"Reader {i}" if i % 3 else "",
            unsubscribe_url=f"https://news.example/unsubscribe?t={i:08d}.{'x' * 86}",
            preferences_url=f"https://news.example/preferences?t={i:08d}.{'y' * 86}",
        )
        for i in range(n)
    ]


def per_message(variant, people: list[Recipient]) -> float:
    start = time.perf_counter()
    for person in people:
        variant.message(person)
    return (time.perf_counter() - start) / len(people)


def email_package_message(variant, person: Recipient) -> bytes:
    from email.message import EmailMessage
    from email.policy import SMTP

    msg = EmailMessage(policy=SMTP)
    msg["From"] = "News Arena <brief@newsarenaindia.com>"
    msg["To"] = person.email
    msg["Subject"] = variant.subject
    msg["List-Unsubscribe"] = f"<{person.unsubscribe_url}>"
    msg.set_content(variant.text)
    msg.add_alternative(variant.html, subtype="html")
    return msg.as_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    settings = load_settings(ROOT / "config" / "distributor.toml")
    edition = edition_of_40(settings)
    now = datetime(2025, 7, 4, 1, 30, tzinfo=UTC)

    start = time.perf_counter()
    variant = render_variant(settings, edition, sections=None, run_id=1, now=now)
    cold = time.perf_counter() - start
    warm: list[float] = []  # every variant
    warm_all: list[float] = []  # the whole edition (the largest variant)
    for _ in range(args.repeat):
        for sections in SECTION_SETS:
            start = time.perf_counter()
            render_variant(settings, edition, sections=sections, run_id=1, now=now)
            (warm_all if sections is None else warm).append(time.perf_counter() - start)
    warm += warm_all
    # premailer alone: time the inlining call render_variant makes, on its own input.
    import distributor.render.email as email_module

    premailer_times: list[float] = []

    def timed_inline(html: str) -> str:
        start = time.perf_counter()
        try:
            return inline_css(html)
        finally:
            premailer_times.append(time.perf_counter() - start)

    email_module.inline_css = timed_inline
    try:
        for _ in range(args.repeat):
            render_variant(settings, edition, sections=None, run_id=1, now=now)
    finally:
        email_module.inline_css = inline_css

    people = recipients(args.recipients)
    message_times = [per_message(variant, people) for _ in range(args.repeat)]
    size = len(variant.message(people[0]))

    dkim_times: list[float] = []
    if shutil.which("openssl"):
        with tempfile.TemporaryDirectory() as folder:
            key = Path(folder) / "dkim.pem"
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
            cfg = settings.file.email.model_dump()
            cfg.update(dkim_selector="bench", dkim_domain="newsarenaindia.com", dkim_private_key_file=str(key))
            signed_settings = Settings(
                settings.file.model_copy(update={"email": EmailConfig(**cfg)}), settings.env, settings.config_path
            )
            signed = render_variant(signed_settings, edition, sections=None, run_id=1, now=now)
            dkim_times = [per_message(signed, people[:200]) for _ in range(args.repeat)]

    package_times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for person in people[:50]:
            email_package_message(variant, person)
        package_times.append((time.perf_counter() - start) / 50)

    naive_times = []
    for person in people[:5]:
        start = time.perf_counter()
        render_variant(settings, edition, sections=None, run_id=1, now=now).message(person)
        naive_times.append(time.perf_counter() - start)

    med = statistics.median
    result = {
        "articles": edition.for_sections(None).count,  # the all-sections variant, as rendered
        "message_bytes": size,
        "render_variant_cold_ms": round(cold * 1000, 1),
        "render_variant_all_ms": round(med(warm_all) * 1000, 1),
        "render_variant_any_ms": round(med(warm) * 1000, 1),
        "premailer_ms": round(med(premailer_times) * 1000, 1),
        "message_us": round(med(message_times) * 1e6, 1),
        "messages_per_second": round(1 / med(message_times)),
        "message_dkim_ms": round(med(dkim_times) * 1000, 2) if dkim_times else None,
        "email_package_ms": round(med(package_times) * 1000, 2),
        "naive_per_recipient_ms": round(med(naive_times) * 1000, 1),
        "speedup_vs_naive": round(med(naive_times) / med(message_times)),
        "recipients": args.recipients,
        "repeat": args.repeat,
    }
    print(json.dumps(result, indent=2))
    print(
        f"{result['articles']} articles, {size} bytes a message: render_variant {result['render_variant_all_ms']} ms "
        f"for all sections, {result['render_variant_any_ms']} ms median over variants (cold "
        f"{result['render_variant_cold_ms']} ms; premailer alone {result['premailer_ms']} ms), "
        f"message() {result['message_us']} µs = {result['messages_per_second']:,}/s; with DKIM "
        f"{result['message_dkim_ms']} ms; email package {result['email_package_ms']} ms; naive per recipient "
        f"{result['naive_per_recipient_ms']} ms ({result['speedup_vs_naive']}x slower than message())"
    )


if __name__ == "__main__":
    main()
