"""Metrics on known predictions, checked against numbers worked out by hand."""

import pytest

from faceqa.eval.compare import mcnemar_p
from faceqa.eval.metrics import NO_ANSWER, MetricSettings, Scored, bootstrap_ci, task_metrics

GENDERS = ["Male", "Female"]


def rows(task, pairs, **common):
    return [Scored(image=f"x:{i}", task=task, truth=t, pred=p, source="fairface", **common)
            for i, (t, p) in enumerate(pairs)]


def test_accuracy_f1_confusion_and_unanswered_by_hand():
    # Male: 2 right, 1 called Female. Female: 2 right, 1 unanswered.
    scored = rows("gender", [("Male", "Male"), ("Male", "Male"), ("Male", "Female"),
                             ("Female", "Female"), ("Female", None), ("Female", "Female")])
    m = task_metrics(scored, GENDERS, MetricSettings(bootstrap=200))
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["unanswered_rate"] == pytest.approx(1 / 6)
    # Male: P = 2/2, R = 2/3, F1 = 0.8. Female: P = 2/3 (one Male called Female), R = 2/3, F1 = 2/3.
    assert m["per_class"]["Male"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["per_class"]["Female"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["Female"]["recall"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["confusion"]["columns"] == ["Male", "Female", NO_ANSWER]
    assert m["confusion"]["matrix"] == [[2, 1, 0], [0, 2, 1]]
    assert m["unanswered_examples"][0]["image"] == "x:4"


def test_prediction_outside_the_comparable_labels_is_wrong_and_gets_its_own_column():
    # RAF-DB has no Contempt: a Contempt answer is wrong, and Contempt is no class of the macro-F1.
    scored = rows("emotion", [("Happiness", "Happiness"), ("Sadness", "Contempt")])
    m = task_metrics(scored, ["Happiness", "Sadness"], MetricSettings(bootstrap=0))
    assert m["accuracy"] == 0.5
    assert m["confusion"]["columns"] == ["Happiness", "Sadness", "Contempt", NO_ANSWER]
    assert m["confusion"]["matrix"] == [[1, 0, 0, 0], [0, 0, 1, 0]]
    assert m["macro_f1"] == pytest.approx((1.0 + 0.0) / 2)


def test_age_within_one_group_and_mae():
    scored = [
        Scored("a", "age_group", "20-29", "20-29", "utkface", years=25, pred_years=27),
        Scored("b", "age_group", "20-29", "30-39", "utkface", years=29, pred_years=31),  # one group off
        Scored("c", "age_group", "20-29", "50-59", "utkface", years=22, pred_years=55),
        Scored("d", "age_group", "0-2", None, "utkface", years=1),  # unanswered: wrong, no MAE
    ]
    m = task_metrics(scored, ["0-2", "20-29", "30-39", "50-59"], MetricSettings(bootstrap=0))
    assert m["accuracy"] == 0.25
    assert m["within_one_group_accuracy"] == 0.5
    assert m["mae_years"] == pytest.approx((2 + 2 + 33) / 3)
    assert m["mae_n"] == 3


def test_disaggregation_gap_and_small_group_warning():
    def group(race, gender, outcomes):
        return [Scored(f"{race}{gender}{i}", "gender", gender, gender if ok else None, "fairface",
                       groups={"race": race, "gender": gender}) for i, ok in enumerate(outcomes)]

    scored = (group("White", "Male", [1, 1, 1, 0]) + group("Black", "Female", [1, 0, 0, 0])
              + group("Indian", "Male", [1, 1]))
    m = task_metrics(scored, GENDERS, MetricSettings(bootstrap=0, min_group_size=3))
    race = m["groups"]["race"]
    assert race["groups"]["White"]["accuracy"] == 0.75
    assert race["groups"]["Black"]["accuracy"] == 0.25
    assert race["groups"]["Indian"]["n"] == 2
    # Indian (n=2 < 3) is warned about and left out of the gap even though it scores 100%.
    assert race["gap"] == {"best": "White", "best_accuracy": 0.75, "worst": "Black", "worst_accuracy": 0.25,
                           "accuracy_gap": 0.5}
    assert len(race["warnings"]) == 1 and race["warnings"][0].startswith("Indian")
    assert set(m["groups"]["race×gender"]["groups"]) == {"White × Male", "Black × Female", "Indian × Male"}
    assert "age_group" not in m["groups"]  # no item has an age label


def test_bootstrap_is_seeded_and_brackets_the_mean():
    import numpy as np

    values = np.array([1.0] * 70 + [0.0] * 30)
    settings = MetricSettings(seed=3, bootstrap=500)
    low, high = bootstrap_ci(values, settings, "x")
    assert low < 0.7 < high and low > 0.55 and high < 0.85
    assert bootstrap_ci(values, settings, "x") == (low, high)
    assert bootstrap_ci(values, MetricSettings(seed=4, bootstrap=500), "x") != (low, high)
    assert bootstrap_ci(np.ones(10), settings, "y") == (1.0, 1.0)


def test_mcnemar_exact_by_hand():
    assert mcnemar_p(0, 6) == pytest.approx(2 * 0.5**6)
    assert mcnemar_p(3, 3) == pytest.approx(1.0)
    assert mcnemar_p(0, 0) == 1.0
