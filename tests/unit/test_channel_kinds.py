"""Channel kinds in config: telegram the default, each kind's own keys, credentials by name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from distributor.settings import ChannelConfig
from tests.conftest import settings_for


def test_telegram_is_the_default_kind():
    config = ChannelConfig(chat_id="@newsarena")
    assert config.kind == "telegram" and config.destination == "@newsarena"


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "chat_id: required for a telegram channel"),
    ({"kind": "mastodon"}, "instance_url: required for a mastodon channel"),
    ({"kind": "mastodon", "instance_url": "https://m.example", "chat_id": "@newsarena"}, "chat_id: only for telegram"),
    ({"chat_id": "@newsarena", "instance_url": "https://m.example"}, "instance_url: only for mastodon"),
    ({"kind": "mastodon", "instance_url": "ftp://m.example"}, "instance_url"),
    ({"kind": "mastodon", "instance_url": "https://m.example", "visibility": "everyone"}, "visibility"),
    ({"kind": "mastodon", "instance_url": "https://m.example", "service_url": "https://bsky.social"}, "service_url: only for bluesky"),
    ({"kind": "myspace"}, "kind"),
])
def test_each_kind_names_its_destination_its_own_way(fields, message):
    with pytest.raises(ValidationError, match=message):
        ChannelConfig(**fields)


def test_mastodon_and_bluesky_channels():
    masto = ChannelConfig(kind="mastodon", instance_url="https://mastodon.social/", visibility="unlisted")
    assert masto.instance_url == "https://mastodon.social" and masto.destination == "https://mastodon.social"
    sky = ChannelConfig(kind="bluesky")
    assert sky.service == "https://bsky.social" and sky.corrections == "leave"


def test_credentials_come_from_the_environment_by_channel_name(tmp_path, monkeypatch):
    channels = {
        "fedi-news": ChannelConfig(kind="mastodon", instance_url="https://m.example"),
        "sky": ChannelConfig(kind="bluesky"),
        "tg": ChannelConfig(chat_id="@newsarena"),
    }
    settings = settings_for(tmp_path, channels=channels)
    assert settings.channel_credentials("fedi-news") == {} and settings.channel_credentials("sky") == {}
    monkeypatch.setenv("MASTODON_FEDI_NEWS_TOKEN", "tok-secret-1")
    monkeypatch.setenv("BLUESKY_SKY_HANDLE", "news.example")
    assert settings.channel_credentials("sky") == {}  # the app password is missing
    monkeypatch.setenv("BLUESKY_SKY_APP_PASSWORD", "abcd-efgh-ijkl-mnop")
    assert settings.channel_credentials("fedi-news") == {"token": "tok-secret-1"}
    assert settings.channel_credentials("sky") == {"handle": "news.example", "app_password": "abcd-efgh-ijkl-mnop"}
    assert settings.channel_credentials("tg") == {}
    assert {"tok-secret-1", "abcd-efgh-ijkl-mnop"} <= set(settings.secrets())


def test_two_telegram_channels_on_one_chat_still_refused_but_other_kinds_share_an_instance(tmp_path):
    import tomllib

    from distributor.settings import FileConfig
    from tests.conftest import CONFIG

    base = tomllib.loads(CONFIG.read_text())
    base["channels"] = {"a": {"kind": "mastodon", "instance_url": "https://m.example"},
                        "b": {"kind": "mastodon", "instance_url": "https://m.example"}}
    FileConfig.model_validate(base)
    base["channels"] = {"a": {"chat_id": "@newsarena"}, "b": {"chat_id": "@NewsArena"}}
    with pytest.raises(ValidationError, match="already channels.a"):
        FileConfig.model_validate(base)
