"""Notifications: from the engine's alert transitions to messages people read.

    notifier.py     claims transitions, runs the pipeline, owns the delivery workers
    pipeline.py     silence → inhibit → route & group → time intervals → dedup → messages
    routing.py, matchers.py, silences.py, inhibit.py, timeintervals.py   the pure parts
    templates.py    sandboxed Jinja2, escaped per format; default_templates/ the defaults
    channels/       one module per integration (email, Slack, Teams, Mattermost, webhook,
                    Alertmanager, file, console) behind one base class
    dispatcher.py   the outbox: leases, retries, dead letters, one lane per integration
    digest.py       scheduled scorecards of what changed; metrics.py; config.py
    commands.py     monitor silence|template|receiver|notifications …
"""
