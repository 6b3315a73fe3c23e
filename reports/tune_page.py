"""A tuning study's page (studies/NAME/index.html): it reads the study; it never trains."""

from __future__ import annotations

import html
import json
import warnings
from pathlib import Path

import pandas as pd

OBJECTIVES = {
    "mse_ratio": "the LSTM's return-space MSE over an inner walk-forward's validation span, divided by the "
    'naive (zero-return) forecast\'s (below 1 beats "tomorrow = today")',
    "rank_ic": "the LSTM's mean daily rank IC across the universe over an inner walk-forward's validation "
    "span (above 0: it ranks the stocks better than chance; higher is better)",
}


def study_page(
    folder: Path,
    study,
    trials: pd.DataFrame,
    best_value,
    best_params,
    tuning_end,
    first_test,
    evaluate_line: str | None,
    objective: str = "mse_ratio",
) -> str:
    """A study's index.html: what was tuned on which span, the best trials, Optuna's plots (PNGs
    written next to it) and the next command."""
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    import reports.quiet  # noqa: F401  (Agg backend, no font noise)

    pictures = []
    for title, plot in (
        ("Optimisation history", vis.plot_optimization_history),
        ("Parameter importances", vis.plot_param_importances),
        ("Slice", vis.plot_slice),
    ):
        file = title.split(" ")[0].lower() + ".png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                plot(study)
            figure = plt.gcf()
            figure.set_size_inches(max(figure.get_size_inches()[0], 8), 5)
            figure.savefig(folder / file, dpi=90, bbox_inches="tight")
            pictures.append((title, file))
        except Exception as exc:  # noqa: BLE001 - Optuna refuses some plots for too few trials
            pictures.append((f"{title}: not drawn ({exc.__class__.__name__}: {exc})", None))
        finally:
            plt.close("all")
    maximise = objective == "rank_ic"
    ranked = trials.assign(_done=trials["state"] != "COMPLETE").sort_values(
        ["_done", "value"], ascending=[True, not maximise], na_position="last"
    )
    ranked["pruned_at"] = ranked["pruned_at"].fillna("—")
    table = ranked.drop(columns="_done").head(15).to_html(index=False, float_format="%.5g", na_rep="—")
    figures = "".join(
        f"<h3>{html.escape(t)}</h3>" + (f'<img src="{f}" alt="{html.escape(t)}">' if f else "") for t, f in pictures
    )
    best = (
        (
            f"best {'validation mean rank IC' if maximise else 'validation MSE / naive MSE'} "
            f"<b>{best_value:.5f}</b> with "
            f"<code>{html.escape(json.dumps(best_params))}</code>"
        )
        if best_value is not None
        else "no complete trial yet"
    )
    # each command on a line of its own, whole (a browser would break an inline one at its dashes)
    commands = [("run the best config once on the out-of-sample span", f"lstm-trader run {folder / 'best.toml'}")]
    if evaluate_line:
        commands.append(
            ("or put it beside the base config, each evaluated once on the out-of-sample span", evaluate_line)
        )
    evaluate = "".join(f"<p>{html.escape(why)}:</p><pre>{html.escape(line)}</pre>" for why, line in commands)
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>study {html.escape(study.study_name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}}table{{border-collapse:collapse;
font-size:13px;display:block;overflow-x:auto}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}
img{{max-width:100%}}pre{{background:#f4f4f4;padding:6px 8px;overflow-x:auto;white-space:pre}}</style></head><body>
<h1>Tuning study {html.escape(study.study_name)}</h1>
<p>{len(trials)} trials. Objective: {OBJECTIVES[objective]}. Trials saw bars up to
{tuning_end.date()} only; the out-of-sample span starts {first_test.date()} and was never loaded into a trial.</p>
<p>{best}.</p><h2>Next</h2>{evaluate}
<h2>Best trials</h2><p>Complete trials first (a pruned trial's value is its last intermediate value);
every trial is in trials.csv.</p>{table}<h2>Optuna's plots</h2>{figures}
</body></html>
"""
