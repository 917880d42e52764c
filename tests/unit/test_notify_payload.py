"""What a notification says about an error (#19 finding 12): the first line of the platform's
message, without the data values it quotes, at most 300 characters (the full text stays in
the run's log behind the run's link)."""

from __future__ import annotations

import inspect

import pytest

from datahub_assets.execute.writers import database
from datahub_assets.runtime.notify import NOTICE_CHARS, notice


class _Cursor:
    """Answers the duplicate-key queries of the merge writer with two offending keys."""

    def __init__(self):
        self.results = [[(5, "ann@example.com", 2), (7, "O'Brien's card 4111", 3)]]

    def execute(self, *_):
        pass

    def fetchall(self):
        return self.results.pop(0)

    def fetchone(self):
        return (2,)


class _Sql:
    def col(self, name: str) -> str:
        return f'"{name}"'


def _duplicate_key_error() -> str:
    """The merge writer's own error for duplicate keys (writers/database.py), its arguments
    passed by name (the staged-column map only where the writer takes one)."""
    args = {
        "cur": _Cursor(),
        "sql": _Sql(),
        "stage": "stage",
        "keys": ["id", "email"],
        "staged": {"id": "id", "email": "email"},
        "where": "public.t",
    }
    wanted = inspect.signature(database._no_duplicate_keys).parameters
    with pytest.raises(database.DatabaseTargetError) as exc:
        database._no_duplicate_keys(**{k: v for k, v in args.items() if k in wanted})
    return str(exc.value)


def test_duplicate_key_samples_of_the_merge_writer_are_left_out():
    message = _duplicate_key_error()
    assert "ann@example.com" in message  # the platform's own error names them (run log)
    text = notice(message)
    for value in ("ann@example.com", "O'Brien", "4111", "=5", "=7"):
        assert value not in text
    assert text.startswith("merge into public.t: 2 key(s) occur more than once")
    assert '<deduplicate keys="id,email"/>' in text  # the advice stays


@pytest.mark.parametrize(
    ("message", "kept", "left_out"),
    [
        (
            "[CAST_INVALID_INPUT] The value '4111-1111' of the type \"STRING\" cannot be cast "
            'to "INT" because it is malformed. SQLSTATE: 22018\n== SQL ==\nselect 4111',
            ['"STRING"', '"INT"', "CAST_INVALID_INPUT"],
            ["4111"],
        ),
        (
            'duplicate key value violates unique constraint "t_pkey"\n'
            "DETAIL:  Key (id)=(4111) already exists.",
            ['"t_pkey"'],
            ["4111"],
        ),
        ("Duplicate entry '4111' for key 'PRIMARY'", ["Duplicate entry"], ["4111"]),
        ('bad value "O\'Brien 4111" in column x', ["bad value", "column x"], ["4111"]),
    ],
)
def test_values_quoted_by_spark_the_databases_and_reprs_are_left_out(message, kept, left_out):
    text = notice(message)
    assert "\n" not in text
    assert all(k in text for k in kept), text
    assert not any(v in text for v in left_out), text


def test_a_long_message_is_cut():
    text = notice("x" * 5000 + "\nsecond line")
    assert len(text) == NOTICE_CHARS
    assert text.endswith("…")


def test_slack_text_cannot_mention_or_link_and_mail_shows_it_as_written():
    """#19 finding 12: a pipeline name or error text in a webhook's `text` never becomes a
    Slack `<!channel>` mention or a `<url|label>` link; the e-mail body shows it unescaped."""
    from datahub_assets.runtime.notify import _body, slack_text

    raw = "job x: failed; error E: <!channel> see <https://evil.example|docs> & more &amp;"
    text = slack_text(raw)
    assert "<" not in text
    assert ">" not in text
    assert text == (
        "job x: failed; error E: &lt;!channel&gt; see &lt;https://evil.example|docs&gt; "
        "&amp; more &amp;amp;"
    )
    assert _body({"text": text, "run_url": "u", "steps": []}).splitlines()[0] == raw
