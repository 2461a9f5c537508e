"""The email readers open scores (next to) nothing in SpamAssassin (issue 14).

Every kind of message we send is made by the code path that sends it, in outbox mode:
the files under var/outbox/email/ hold the bytes SMTP would carry. They are all scored by
ONE `spamassassin --local --mbox` process: it takes ~3 s to start here and ~0.1 s a
message, so one process for every message keeps the test at a few seconds.

Only local rules run, from the rules the Debian package ships (no DNS blocklists, no
Bayes, no sa-update: SpamAssassin's score set 0). Links point at a real https host, as
in production (PUBLIC_BASE_URL); a loopback one is a staging setting (see the control
message below).

Skipped loudly when spamassassin is not installed (Debian: `apt-get install
spamassassin`); a failure instead under DISTRIBUTOR_REQUIRE_SERVICES=1, or under
DISTRIBUTOR_REQUIRE_SPAMASSASSIN=1, which .ci/run sets once spamassassin is installed.
"""

from __future__ import annotations

import email
import mailbox
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import policy
from pathlib import Path

import pytest

from distributor import engine, subscribers
from distributor.articles import Article
from distributor.channels.mail import outbox_email_dir
from distributor.channels.outbox import outbox_name
from distributor.delivery import email as dispatch
from distributor.ingest.pipeline import ingest_sources
from distributor.render.email import render_confirmation
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.articles import save_articles
from tests.conftest import ENV_KEYS, settings_for, unavailable

# A message must score below this. The issue promises 0: informational rules
# (HTML_MESSAGE, NO_RECEIVED) weigh 0.001 each, most rules that say something about a
# message half a point or more. SpamAssassin calls mail spam at 5.
SCORE_LIMIT = 0.5
# Rules that name a defect of our own making, failed whatever they weigh here: a local
# run scores with set 0 (no Bayes, no network), where some of these weigh next to
# nothing, while a receiving server that has both gives them up to ~1.8 points.
DEFECT_RULES = frozenset(
    {
        # headers
        "MISSING_DATE", "MISSING_MID", "MISSING_FROM", "MISSING_SUBJECT", "INVALID_DATE", "INVALID_MSGID",
        # MIME: HTML alone or unlike its text part, HTML with no <html>, ASCII text in base64
        "MIME_HTML_ONLY", "MPART_ALT_DIFF", "HTML_MIME_NO_HTML_TAG", "MIME_BASE64_TEXT",
        # links to a bare IP address (a loopback PUBLIC_BASE_URL)
        "NUMERIC_HTTP_ADDR", "NORMAL_HTTP_TO_IP",
    }
)
# DEFECT_RULES that weigh 0 in score set 0, which turns a rule off: given a token weight
# so that a hit shows (and fails).
WAKE_RULES = ("NUMERIC_HTTP_ADDR",)
# The whole scoring run (start-up included) gets this long before the test fails.
SPAMASSASSIN_TIMEOUT_SECONDS = 180
# Production links: the web app on the newsroom's own domain, over https.
PUBLIC_BASE_URL = "https://newsletter.newsarenaindia.com"
SECRET_KEY = "spam-score-test-secret-key-0123456789abcdef"
# The control message: the confirmation link on a loopback web app, as a staging
# install without PUBLIC_BASE_URL sends it. It proves the run sees and reports rules.
CONTROL = "control: confirmation linking to 127.0.0.1"
CONTROL_RULE = "NUMERIC_HTTP_ADDR"

# The messages readers receive; each name is one test.
MORNING = "morning digest, all sections"
MORNING_TEXT = "morning digest, text format"
DEVANAGARI = "Devanagari issue (base64 body)"
BREAKING = "breaking alert"
CONFIRMATION = "confirmation"
WELCOME = "welcome"
MESSAGES = (MORNING, MORNING_TEXT, DEVANAGARI, BREAKING, CONFIRMATION, WELCOME)

SITE = "https://www.newsarenaindia.com"


@dataclass(frozen=True)
class Verdict:
    """What SpamAssassin made of one message: its score and the rules hit, with points."""

    score: float
    rules: dict[str, float]

    def __str__(self) -> str:
        hits = sorted(self.rules.items(), key=lambda rule: (-rule[1], rule[0]))
        return f"score {self.score:.3f}: " + (", ".join(f"{name} {points:g}" for name, points in hits) or "no rules")


# --- the messages, made as they are sent -------------------------------------------------


def newsroom(root: Path) -> tuple[Settings, Store]:
    """Settings on their own var dir (outbox mode: no SMTP_URL) and a migrated SQLite store."""
    settings = settings_for(root)
    store = Store(settings.database_url)
    store.migrate()
    return settings, store


def sent_file(settings: Settings, ref: str) -> bytes:
    return (outbox_email_dir(settings) / outbox_name(ref)).read_bytes()


def send_run(settings: Settings, store: Store, edition: str, slot: datetime) -> int:
    """Open, prepare and dispatch a run of `edition` at `slot`, as the one-process cycle does."""
    run, created = engine.open_slot(settings, store, edition, slot)
    assert created
    prepared = engine.prepare_run(settings, store, run.id)
    assert prepared.ready, prepared.reason
    dispatch.dispatch_run(settings, store, run.id, now=slot)
    return run.id


def reader(settings: Settings, store: Store, email_address: str, now: datetime, **prefs) -> int:
    subscriber, _ = subscribers.subscribe(settings, store, email_address, confirmed=True, source="cli", now=now, **prefs)
    return subscriber.id


def sample_newsroom(root: Path, now: datetime) -> dict[str, bytes]:
    """The shipped sample feed, as `make run` ingests it: the morning digest for an
    all-sections reader (HTML and text format), a breaking alert, and the confirmation
    and welcome emails of a reader signing up."""
    settings, store = newsroom(root)
    [report] = ingest_sources(settings, store)  # the sample feed, its newest item 5 minutes old
    assert report.new, report.summary()
    everything = reader(settings, store, "asha.verma@example.com", now, name="Asha", editions=["morning"])
    text_reader = reader(settings, store, "dev.malhotra@example.net", now, editions=["morning"], format="text")
    morning = send_run(settings, store, "morning", now)

    # The first breaking run covers the day's backlog, before anyone took alerts; the
    # next one carries the one story published since.
    send_run(settings, store, "breaking", now)
    alerted = reader(settings, store, "rohan.iyer@example.com", now, name="Rohan", editions=["breaking"])
    save_articles(
        store,
        [
            Article(
                key=f"{SITE}/nation/cyclone-dana-landfall-odisha-coast",
                url=f"{SITE}/nation/cyclone-dana-landfall-odisha-coast",
                title="Cyclone Dana makes landfall on Odisha coast; 1.1 lakh people moved to shelters",
                section="nation",
                published_at=now + timedelta(minutes=1),
                standfirst="Winds of up to 110 km/h hit Bhitarkanika and Dhamra; trains and flights from Bhubaneswar are suspended until Friday noon.",
                byline="News Arena Network",
                dateline="Bhubaneswar",
                image_url=f"{SITE}/images/article/cyclone-dana-landfall.jpg",
                read_minutes=2,
            )
        ],
    )
    breaking = send_run(settings, store, "breaking", now + timedelta(minutes=2))

    signup, needs_confirmation = subscribers.subscribe(settings, store, "kavya.menon@example.com", name="Kavya Menon", now=now)
    assert needs_confirmation
    [confirmation] = subscribers.send_confirmations(settings, [signup], now=now)
    confirmed, _ = subscribers.confirm(store, signup.id, now=now)
    welcome = subscribers.send_welcome(settings, confirmed, now=now)
    assert confirmation.outcome == welcome.outcome == "sent"

    messages = {
        MORNING: sent_file(settings, f"{morning}-{everything}"),
        MORNING_TEXT: sent_file(settings, f"{morning}-{text_reader}"),
        BREAKING: sent_file(settings, f"{breaking}-{alerted}"),
        CONFIRMATION: sent_file(settings, f"confirm-{signup.id}"),
        WELCOME: sent_file(settings, f"welcome-{signup.id}"),
    }
    store.dispose()
    return messages


# A Hindi desk's morning: every headline and standfirst in Devanagari, so the bodies are
# base64 (quoted-printable would cost 9 bytes a letter; see render/transfer.py).
HINDI_STORIES = (
    ("nation", "monsoon-red-alert", "मानसून: मौसम विभाग ने 10 राज्यों में भारी बारिश का रेड अलर्ट जारी किया",
     "अगले 48 घंटों में उत्तराखंड, हिमाचल प्रदेश और असम में भूस्खलन की आशंका; राज्य आपदा बलों को तैयार रहने को कहा गया है।"),
    ("nation", "railways-monsoon-specials", "रेलवे त्योहारों से पहले 120 विशेष ट्रेनें चलाएगा, अग्रिम आरक्षण आज से",
     "दिल्ली, मुंबई और कोलकाता से पटना, गोरखपुर और दरभंगा के लिए अतिरिक्त ट्रेनें चलेंगी; तत्काल कोटा भी बढ़ाया गया है।"),
    ("states", "bihar-flood-relief", "बिहार: कोसी का जलस्तर बढ़ा, सुपौल और सहरसा के 40 गांवों में राहत शिविर",
     "राज्य सरकार ने प्रभावित परिवारों को छह हज़ार रुपये की तत्काल सहायता देने की घोषणा की; नावें और दवाइयाँ भेजी गईं।"),
    ("politics", "monsoon-session-dates", "संसद का मानसून सत्र 21 जुलाई से, सर्वदलीय बैठक अगले सप्ताह",
     "सरकार इस सत्र में आठ नए विधेयक लाने की तैयारी में है; विपक्ष ने महंगाई और बेरोज़गारी पर चर्चा की माँग की है।"),
    ("economy", "sensex-it-rally", "सेंसेक्स 193 अंक चढ़कर बंद, आईटी शेयरों में तेज़ी से बाज़ार में रौनक",
     "इंफोसिस और टीसीएस के शेयरों में तीन प्रतिशत तक की बढ़त; रुपया डॉलर के मुकाबले स्थिर रहा।"),
    ("sports", "hawks-last-ball-six", "हैदराबाद हॉक्स ने आख़िरी गेंद पर छक्का जड़कर डेक्कन टी20 ख़िताब जीता",
     "अंतिम गेंद पर पाँच रन चाहिए थे; 21 वर्षीय रोहन वर्मा ने लॉन्ग-ऑन के ऊपर से गेंद को स्टैंड में पहुँचा दिया।"),
    ("sports", "women-hockey-belgium", "भारतीय महिला हॉकी टीम ने चार देशों के टूर्नामेंट में बेल्जियम को 3-2 से हराया",
     "कप्तान सलीमा टेटे ने अंतिम क्वार्टर में निर्णायक गोल किया; टीम अब शनिवार को जर्मनी से भिड़ेगी।"),
    ("entertainment", "film-festival-goa", "गोवा फ़िल्म महोत्सव में इस बार 15 भारतीय भाषाओं की 180 फ़िल्में दिखाई जाएँगी",
     "उद्घाटन समारोह में मणिपुरी फ़िल्म 'इमा' का प्रीमियर होगा; पहली बार सांकेतिक भाषा में भी सत्र होंगे।"),
)


def devanagari_newsroom(root: Path, now: datetime) -> bytes:
    """A morning issue of Hindi stories, for an all-sections reader with a Hindi name."""
    settings, store = newsroom(root)
    save_articles(
        store,
        [
            Article(
                key=f"{SITE}/hindi/{section}/{slug}",
                url=f"{SITE}/hindi/{section}/{slug}",
                title=title,
                section=section,
                published_at=now - timedelta(hours=1, minutes=7 * i),
                standfirst=standfirst,
                byline="न्यूज़ अरीना डेस्क",
                dateline="नई दिल्ली",
                image_url=f"{SITE}/images/article/hindi/{slug}.jpg" if i % 3 == 0 else None,
                read_minutes=2 + i % 3,
                trending=i in (0, 5),
            )
            for i, (section, slug, title, standfirst) in enumerate(HINDI_STORIES)
        ],
    )
    meera = reader(settings, store, "meera.joshi@example.com", now, name="मीरा जोशी", editions=["morning"])
    run_id = send_run(settings, store, "morning", now)
    store.dispose()
    return sent_file(settings, f"{run_id}-{meera}")


def loopback_confirmation(root: Path, now: datetime) -> bytes:
    settings = settings_for(root)
    return render_confirmation(
        settings, email="tester@newsarenaindia.com", confirm_url="http://127.0.0.1:8000/confirm/WzEsImt.abc", now=now
    )


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every message readers receive, plus the control, as the outbox wrote them."""
    # Module scope runs before the per-test environment cleaning: clear it here too, so
    # an operator's SMTP_URL can never make this test send real mail.
    with pytest.MonkeyPatch.context() as env:
        for key in ENV_KEYS:
            env.delenv(key, raising=False)
        env.setenv("PUBLIC_BASE_URL", PUBLIC_BASE_URL)
        env.setenv("SECRET_KEY", SECRET_KEY)
        # The clock of the SpamAssassin run: a Date far from it costs points (DATE_IN_PAST_*).
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        dispatch.clear_caches()
        try:
            messages = sample_newsroom(tmp_path_factory.mktemp("newsarena"), now)
            messages[DEVANAGARI] = devanagari_newsroom(tmp_path_factory.mktemp("hindi"), now)
            env.delenv("PUBLIC_BASE_URL")
            messages[CONTROL] = loopback_confirmation(tmp_path_factory.mktemp("staging"), now)
        finally:
            dispatch.clear_caches()
    return messages


# --- SpamAssassin ------------------------------------------------------------------------


def spamassassin_binary() -> str:
    binary = shutil.which("spamassassin")
    if binary is None:
        message = "spamassassin is not installed (Debian: apt-get install spamassassin)"
        if os.environ.get("DISTRIBUTOR_REQUIRE_SPAMASSASSIN") == "1":
            pytest.fail(f"SpamAssassin NOT AVAILABLE ({message}): spam score tests NOT RUN", pytrace=False)
        unavailable("SpamAssassin", "PATH", message, "spam score tests")
    return binary


_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)


def as_mbox(messages: list[bytes]) -> bytes:
    """The messages as one mbox, as a mail store would keep them: LF line ends, each
    after a "From " separator, body lines starting "From " quoted with ">"."""
    return b"".join(
        b"From distributor@localhost Thu Jan  1 00:00:00 2026\n" + _FROM_LINE.sub(rb">\1", data.replace(b"\r\n", b"\n")) + b"\n"
        for data in messages
    )


def spamassassin_command(binary: str, prefs: Path) -> list[str]:
    """One local-only run over an mbox on stdin: an empty user_prefs of our own and no
    Bayes (so the operator's training never counts), WAKE_RULES on, each rule hit with
    its points in X-Spam-Rules."""
    return [
        binary, "--local", "--mbox", "--nocreate-prefs", f"--prefspath={prefs}",
        "--cf=use_bayes 0", *(f"--cf=score {rule} 0.001" for rule in WAKE_RULES),
        "--cf=add_header all Rules _TESTSSCORES(,)_",
    ]  # fmt: skip


def score_all(binary: str, messages: dict[str, bytes], workdir: Path) -> dict[str, Verdict]:
    """Each message's Verdict, from one spamassassin process; keyed like `messages`."""
    by_id = {}
    for name, data in messages.items():
        message_id = email.message_from_bytes(data, policy=policy.default)["Message-ID"]
        assert message_id and message_id not in by_id, f"{name}: Message-ID {message_id!r} missing or not unique"
        by_id[message_id] = name
    prefs = workdir / "user_prefs"
    prefs.write_text("")
    # HOME too: nothing of the operator's ~/.spamassassin is read or written.
    environment = {**os.environ, "HOME": str(workdir)}
    command = spamassassin_command(binary, prefs)
    done = subprocess.run(
        command, input=as_mbox(list(messages.values())), capture_output=True, env=environment,
        timeout=SPAMASSASSIN_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    errors = done.stderr.decode(errors="replace")
    if "no rules were found" in errors:
        unavailable("SpamAssassin", binary, "its rules are missing (Debian ships them in /usr/share/spamassassin)", "spam score tests")
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{errors[-2000:]}"
    scored = workdir / "scored.mbox"
    scored.write_bytes(done.stdout)
    verdicts: dict[str, Verdict] = {}
    for message in mailbox.mbox(scored, create=False):
        name = by_id[message["Message-ID"]]
        header = message["X-Spam-Rules"]
        assert header is not None, f"{name}: spamassassin added no X-Spam-Rules header:\n{errors[-2000:]}"
        rules = {}
        for hit in "".join(header.split()).split(","):
            if hit and hit != "none":
                rule, points = hit.split("=")
                rules[rule] = float(points)
        verdicts[name] = Verdict(round(sum(rules.values()), 3), rules)
    assert verdicts.keys() == messages.keys(), f"not scored: {sorted(messages.keys() - verdicts.keys())}"
    return verdicts


@pytest.fixture(scope="module")
def spamassassin() -> str:
    return spamassassin_binary()


@pytest.fixture(scope="module")
def verdicts(spamassassin: str, sent: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Verdict]:
    # `spamassassin` first: without it, skip before making any message.
    started = time.monotonic()
    found = score_all(spamassassin, sent, tmp_path_factory.mktemp("spamassassin"))
    # The scores even when all pass (pytest -rP shows them): how far each is from the limit.
    print(f"spamassassin scored {len(found)} messages in {time.monotonic() - started:.1f} s:")
    for name in sent:
        print(f"  {name}: {found[name]}")
    return found


# --- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MESSAGES)
def test_message_scores_below_the_limit(verdicts, name):
    verdict = verdicts[name]
    defects = sorted(verdict.rules.keys() & DEFECT_RULES)
    assert verdict.score < SCORE_LIMIT and not defects, (
        f"{name}: {verdict} (limit {SCORE_LIMIT}" + (f"; defects whatever their weight: {', '.join(defects)})" if defects else ")")
    )


def test_devanagari_issue_is_sent_in_base64(sent):
    # The case the test is for: a body SpamAssassin must decode from base64.
    message = email.message_from_bytes(sent[DEVANAGARI], policy=policy.default)
    encodings = [part["Content-Transfer-Encoding"] for part in message.walk() if not part.is_multipart()]
    assert "base64" in encodings, encodings


def test_a_loopback_link_is_caught(verdicts):
    """The run reads what SpamAssassin found: a confirmation linking to 127.0.0.1 hits
    the rule production scores at 1.2 points (score set 3)."""
    assert CONTROL_RULE in verdicts[CONTROL].rules, f"{CONTROL}: {verdicts[CONTROL]}"
