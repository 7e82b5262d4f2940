"""The model card says only what was measured: no 0% for undefined scores, no intervals from two items."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.evaluate import EvalConfig, evaluate
from faceqa.eval.predictor import Prediction, Predictor


class AlwaysNeutralMale(Predictor):
    name = "always"

    def predict(self, item, task):
        return Prediction({"gender": "Male", "emotion": "Neutral"}[task], 0.01, text="x")


def _items() -> list[FaceRecord]:
    """40 FairFace-sourced faces: 38 White and 2 Black; only Neutral and Happiness expressions."""
    return [FaceRecord(Path(f"/nowhere/{i}.jpg"), f"fairface:{i}.jpg", "fairface", "val",
                       {"gender": "Male" if i % 2 else "Female", "race": "Black" if i < 2 else "White",
                        "emotion": "Neutral" if i % 3 else "Happiness"}) for i in range(40)]


def _card(tmp_path: Path, **model: str) -> str:
    config = EvalConfig(tasks=("gender", "emotion"), bootstrap=200, plots=False, progress=False)
    evaluate(_items(), AlwaysNeutralMale(), tmp_path / "run", config, dataset={"name": "t", "format": "fairface"},
             model=model)
    return (tmp_path / "run" / "model_card.md").read_text()


def _row(card: str, start: str, after: str = "") -> str:
    text = card[card.index(after):] if after else card
    return next(line for line in text.splitlines() if line.startswith(start))


def test_classes_without_support_or_predictions_show_a_dash(tmp_path):
    card = _card(tmp_path)
    per_class = "**emotion: per class**"
    assert _row(card, "| Contempt |", per_class) == "| Contempt | 0 | – | – | – |"  # never true, never predicted
    assert _row(card, "| Happiness |", per_class) == "| Happiness | 14 | – | 0.0% | 0.0% |"  # never predicted
    assert _row(card, "| Neutral |", per_class).startswith("| Neutral | 26 | 65.0% | 100.0% |")


def test_tiny_groups_get_no_interval(tmp_path):
    card = _card(tmp_path)
    black = _row(card, "| Black |", "### gender by race")
    assert "(too few)" in black and "[0.0, 0.0]" not in black and "[" not in black
    assert "[" in _row(card, "| White |", "### gender by race")  # 38 items: an interval


def test_reference_rows_only_for_the_datasets_evaluated_and_no_column_called_age(tmp_path):
    card = _card(tmp_path)
    references = card[card.index("### Reference rows"):card.index("## Disaggregated")]
    assert "| FaceScanPaliGemma | FairFace | gender | 95.8%" in references
    assert "AffectNet" not in references and "RAF-DB" not in references and "FaceXBench" not in references
    assert "| age |" not in card and "age groups: ±1 accuracy, MAE" in card


def test_card_records_base_model_adapter_prompt_style_and_decoding(tmp_path):
    card = _card(tmp_path, base_model="/models/paligemma-3b-pt-224", adapter="/runs/a/adapter",
                 prompt_style="paligemma", prefix_attention="image", decoding="greedy (temperature 0), at most 64")
    for line in ("- **Base model:** /models/paligemma-3b-pt-224", "- **Adapter:** /runs/a/adapter",
                 "- **Prompt style:** paligemma", "- **PaliGemma prefix attention:** image",
                 "- **Decoding:** greedy (temperature 0), at most 64"):
        assert line in card


def test_eval_run_that_evaluates_nothing_exits_non_zero(tmp_path):
    from faceqa.eval.cli import app

    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["run", str(tmp_path / "empty"), "-f", "affectnet", "--engine",
                                      "-o", str(tmp_path / "run"), "--no-progress", "--no-plots"])
    assert result.exit_code == 1
    assert "nothing was evaluated: 0 items read from" in result.output


def test_eval_run_against_a_wrong_model_name_fails_once_with_the_served_names(tmp_path):
    from eval_standin import StandIn

    from faceqa.dev.synthetic import write_fairface_layout
    from faceqa.eval.cli import app

    root = write_fairface_layout(tmp_path / "ff", {"val": 4}, size=32)
    with StandIn(lambda image, prompt: "Male") as server:
        result = CliRunner().invoke(app, ["run", str(root), "-f", "fairface", "--endpoint", server.base_url,
                                          "--model", "nope", "-o", str(tmp_path / "run"), "--no-progress"])
        assert server.requests == 0
    assert result.exit_code == 1
    assert "does not serve a model named 'nope'; it serves: standin" in result.output


def test_a_number_glued_to_a_broken_character_is_not_an_age():
    from faceqa.prompts.parser import parse_answer

    assert not parse_answer("age_group", "1\ufffdosianre").ok  # a tiny model's bytes, cut mid-character
    assert not parse_answer("age_group", "\ufffd7").ok
    assert parse_answer("age_group", "35yo").label == "30-39" and parse_answer("age_group", "1").label == "0-2"


def test_eval_asks_in_the_style_the_adapter_recorded_and_the_card_says_so(tmp_path):
    from faceqa.eval.cli import _model_recipe
    from faceqa.vlm.recipe import Recipe

    (tmp_path / "lora").mkdir()
    Recipe("/models/paligemma-3b-pt-224", "paligemma", "paligemma", "image", 224, 0.25).save(tmp_path / "lora")
    style, card, _ = _model_recipe(False, None, None, "EMPTY", tmp_path / "base", tmp_path / "lora", "auto", 64)
    assert style == "paligemma"
    assert card == {"prompt_style": "paligemma", "decoding": "greedy (temperature 0), at most 64 new tokens",
                    "base_model": "/models/paligemma-3b-pt-224", "adapter": str(tmp_path / "lora"),
                    "prefix_attention": "image"}
    assert _model_recipe(False, None, None, "EMPTY", tmp_path / "base", tmp_path / "lora", "chat", 64)[0] == "chat"
