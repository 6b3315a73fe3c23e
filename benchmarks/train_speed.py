"""Training throughput: `LSTMForecaster.fit` / `finetune` against plain Keras `model.fit`.

Same network (`build_stacked_lstm` with the default shapes: 2 x LSTM(32), lookback 30, 8 features),
same data, same epochs and batch size. Two workloads:
  - fine-tune: 250 samples x 2 epochs, batch 64 (one warm-started walk-forward fold);
  - refit: 900 samples x 5 epochs, batch 64, no early stopping (a from-scratch fold: `fit` again
    on the same forecaster resets its network, as the walk-forward does).
Also shown, for reference: the product's previous path (keras.layers.LSTM, reseeding before each
`fit`), which is what the walk-forward used before this benchmark existed. Target: >= 2x on the
fine-tune workload against plain `model.fit` on the same network.

    python benchmarks/train_speed.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from forecasting.model import LSTMForecaster, build_stacked_lstm, import_keras  # noqa: E402

LOOKBACK, FEATURES, UNITS, LAYERS, BATCH = 30, 8, 32, 2, 64


def per_second(samples: int, repeats: int, call) -> float:
    call()  # trace / warm up
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return samples * repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    keras = import_keras()
    keras.utils.set_random_seed(1)  # once: Keras' shuffling needs a global seed under op determinism
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, LOOKBACK, FEATURES))
    y = rng.normal(scale=0.01, size=1000)
    X_ft, y_ft = X[-250:], y[-250:]
    X_fit, y_fit = X[:900], y[:900]

    ours = LSTMForecaster(n_layers=LAYERS, units=UNITS, epochs=5, batch_size=BATCH, val_fraction=0.0, seed=1)
    ours.fit(X_fit, y_fit)
    scaled_ft = ours.x_scaler_.windows(X_ft), ours.y_scaler_.column(y_ft)
    scaled_fit = ours.x_scaler_.windows(X_fit), ours.y_scaler_.column(y_fit)

    def plain_fit(model, data, epochs, reseed=False):
        def call():
            if reseed:
                keras.utils.set_random_seed(1)
            model.fit(*data, epochs=epochs, batch_size=BATCH, shuffle=True, verbose=0)

        return call

    same_net = build_stacked_lstm(LAYERS, UNITS, 0.1, LOOKBACK, FEATURES, 1e-3, seed=1)
    old_net = build_stacked_lstm(LAYERS, UNITS, 0.1, LOOKBACK, FEATURES, 1e-3, seed=1, cell="keras")
    rows = []
    for label, samples, data, epochs, ours_call in (
        ("fine-tune (250 x 2 epochs)", 500, scaled_ft, 2, lambda: ours.finetune(X_ft, y_ft, epochs=2)),
        ("refit (900 x 5 epochs)", 4500, scaled_fit, 5, lambda: ours.fit(X_fit, y_fit)),
    ):
        repeats = args.repeats if samples < 1000 else max(2, args.repeats // 4)
        plain = per_second(samples, repeats, plain_fit(same_net, data, epochs))
        mine = per_second(samples, repeats, ours_call)
        old = per_second(samples, repeats, plain_fit(old_net, data, epochs, reseed=True))
        rows.append((label, mine, plain, old))
    print(f"{'workload':<28}{'LSTMForecaster':>16}{'model.fit':>12}{'ratio':>8}{'previous path':>15}{'ratio':>8}")
    print(f"{'':<28}{'samples/s':>16}{'samples/s':>12}{'':>8}{'samples/s':>15}")
    for label, mine, plain, old in rows:
        print(f"{label:<28}{mine:>16,.0f}{plain:>12,.0f}{mine / plain:>7.1f}x{old:>15,.0f}{mine / old:>7.1f}x")
    print(
        "target: >= 2x against model.fit on the fine-tune workload "
        f"({'met' if rows[0][1] / rows[0][2] >= 2 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
