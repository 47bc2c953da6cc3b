"""Epochs per second of scikit-learn's MLPClassifier on the digits, set up
like `kiln train --data builtin:digits --model mlp:64,32 --optimizer sgd`:
the same 1,797 digits (scikit-learn's load_digits, which kiln embeds), the
same 1,438 training rows (80 %), standardised inputs, hidden layers 64 and
32 with ReLU, plain mini-batch SGD (no momentum) with batches of 32,
learning rate 0.05, a fixed number of epochs and no early stopping.

Prints one JSON line: {"epochs", "runs", "median_epochs_per_s", ...}.
Usage: python3 bench_train_sklearn.py EPOCHS RUNS
"""

import json
import statistics
import sys
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler


def main() -> None:
    epochs, runs = int(sys.argv[1]), int(sys.argv[2])
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=359, random_state=0)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    rates, accuracies = [], []
    for seed in range(runs):
        clf = MLPClassifier(
            hidden_layer_sizes=(64, 32),
            activation="relu",
            solver="sgd",
            learning_rate_init=0.05,
            momentum=0.0,
            nesterovs_momentum=False,
            batch_size=32,
            alpha=1e-3,
            max_iter=epochs,
            tol=0.0,
            n_iter_no_change=epochs + 1,
            shuffle=True,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            clf.fit(x_train, y_train)
            seconds = time.perf_counter() - start
        assert clf.n_iter_ == epochs, clf.n_iter_
        rates.append(epochs / seconds)
        accuracies.append(clf.score(x_test, y_test))
    print(json.dumps({
        "runtime": "scikit-learn MLPClassifier",
        "train_rows": len(x_train),
        "epochs": epochs,
        "runs": runs,
        "median_epochs_per_s": statistics.median(rates),
        "epochs_per_s": rates,
        "median_test_accuracy": statistics.median(accuracies),
    }))


if __name__ == "__main__":
    main()
