"""`faceqa eval compare`: paired differences with McNemar's exact test, on hand-made runs."""

import json

import pytest
from typer.testing import CliRunner

from faceqa.eval.cli import app
from faceqa.eval.compare import compare_runs


def scored_run(folder, outcomes, task="gender"):
    folder.mkdir()
    rows = [{"image": f"x:{i}", "task": task, "truth": "Male", "pred": "Male" if ok else "Female"}
            for i, ok in enumerate(outcomes)]
    (folder / "scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_compare_counts_discordant_pairs(tmp_path):
    # 20 shared items: both right on 10, only B right on 8, only A right on 2; item 20 is only in B.
    a = scored_run(tmp_path / "a", [1] * 10 + [0] * 8 + [1] * 2)
    b = scored_run(tmp_path / "b", [1] * 10 + [1] * 8 + [0] * 2 + [1])
    result = compare_runs(a, b, bootstrap=500)
    t = result["tasks"]["gender"]
    assert (t["n"], t["a_right_b_wrong"], t["b_right_a_wrong"]) == (20, 2, 8)
    assert t["accuracy_a"] == 0.6 and t["accuracy_b"] == 0.9
    assert t["difference"] == pytest.approx(0.3)
    # Exact two-sided binomial on 10 discordant pairs, 2 vs 8: 2 * P(X <= 2) = 2 * 56 / 1024.
    assert t["mcnemar_p"] == pytest.approx(112 / 1024)
    low, high = t["difference_ci"]
    assert low < 0.3 < high
    assert result["only_in_b"] == 1 and result["only_in_a"] == 0


def test_compare_cli_shows_published_rows_and_rejects_unfinished_runs(tmp_path):
    a = scored_run(tmp_path / "a", [1, 0, 1])
    b = scored_run(tmp_path / "b", [1, 1, 1])
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["tasks"]["gender"]["b_right_a_wrong"] == 1
    assert {r["model"] for r in data["published"]} == {"FaceScanPaliGemma"}
    assert all(r["note"] == "published, not measured" for r in data["published"])
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "empty")])
    assert result.exit_code == 1 and "no scored.jsonl" in result.output
