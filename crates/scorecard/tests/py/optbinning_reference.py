"""Reference scorecard for the German credit acceptance test (tests/german_credit.rs).

Trains optbinning's Scorecard (BinningProcess + scikit-learn LogisticRegression, default
settings) on the train CSV and prints one JSON line with the test AUC and the training time.

Usage: optbinning_reference.py TRAIN_CSV TEST_CSV TARGET_COLUMN BAD_VALUE
"""

import json
import sys
import time

import pandas as pd
from optbinning import BinningProcess, Scorecard
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


def main() -> None:
    train_path, test_path, target, bad_value = sys.argv[1:5]
    train = pd.read_csv(train_path)
    test = pd.read_csv(test_path)
    y_train = (train.pop(target).astype(str) == bad_value).astype(int).to_numpy()
    y_test = (test.pop(target).astype(str) == bad_value).astype(int).to_numpy()

    variables = list(train.columns)
    categorical = [c for c in variables if not pd.api.types.is_numeric_dtype(train[c])]

    started = time.perf_counter()
    binning_process = BinningProcess(variables, categorical_variables=categorical)
    scorecard = Scorecard(binning_process=binning_process, estimator=LogisticRegression())
    scorecard.fit(train, y_train)
    train_seconds = time.perf_counter() - started

    p_test = scorecard.predict_proba(test)[:, 1]
    p_train = scorecard.predict_proba(train)[:, 1]
    print(
        json.dumps(
            {
                "test_auc": float(roc_auc_score(y_test, p_test)),
                "train_auc": float(roc_auc_score(y_train, p_train)),
                "train_seconds": train_seconds,
                "selected": int(len(scorecard.binning_process_.get_support(names=True))),
            }
        )
    )


if __name__ == "__main__":
    main()
