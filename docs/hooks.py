"""MkDocs hook: the command and config reference pages are generated from the code
(`lstm_trader.reference`), committed so they read on GitHub too, and checked at every build: a page
that no longer says what `--help` or the config models say fails the build (`make docs` rewrites them)."""

from mkdocs.exceptions import PluginError


def on_pre_build(config):
    from pathlib import Path

    from lstm_trader.reference import stale_pages

    stale = stale_pages(Path(config["docs_dir"]))
    if stale:
        raise PluginError(f"generated reference out of date: {', '.join(stale)} (hint: run make docs and commit them)")
