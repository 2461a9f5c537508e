"""Inbound mail: bounces, complaints and mailto unsubscribes coming back to us.

tokens.py    the VERP and mailto addresses (signed delivery ids) and their check
classify.py  one classifier for DSNs, non-standard bounces, ARF complaints, unsubscribes
policy.py    what each outcome does to a subscriber, as data; every change an event
process.py   one message in: idempotent by Message-ID, classify, apply the policy
receiver.py  the SMTP/LMTP server (aiosmtpd) and the IMAP fetcher
esp.py       ESP webhooks (SES via SNS, SendGrid, Postmark, Mailgun) -> the same outcomes
"""
