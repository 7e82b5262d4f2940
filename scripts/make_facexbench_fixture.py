"""Write tests/data/facexbench: a few questions in FaceXBench's exact file format, images from faceqa/examples.

The images are crops of the public-domain example portraits (see faceqa/examples/README.md); the answers are
facts about them (who is who, gender, count, the roll angle we rotate by), not the engine's estimates, so the
engine can be wrong on them (Grace Hopper's gender, Obama's age). Run from the repository root.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

EXAMPLES = Path("faceqa/examples")
OUT = Path("tests/data/facexbench/benchmark")
BOXES = {"obama.jpg": (370, 91, 240, 329), "obama2.jpg": (201, 229, 276, 404), "biden.jpg": (427, 175, 287, 401),
         "grace_hopper.jpg": (183, 120, 170, 213), "astronaut.png": (178, 63, 90, 114)}
INSTRUCTION = "Please answer the question and provide only the correct option letter, e.g., A, B, C, D."
LETTERS = "ABCD"


def portrait(name: str, roll: float = 0.0) -> Image.Image:
    """The face with a margin of its own size around it, 144 px wide; `roll` > 0 turns it clockwise."""
    x, y, w, h = BOXES[name]
    image = Image.open(EXAMPLES / name).convert("RGB")
    crop = image.crop((max(0, x - w // 2), max(0, y - h // 2), x + w + w // 2, y + h + h // 2))
    if roll:
        crop = crop.rotate(-roll, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
    return crop.resize((144, round(144 * crop.height / crop.width)), Image.Resampling.LANCZOS)


def write(stem: str, category: str, sub: str, dataset: str, prepend: str, questions: list[tuple]) -> None:
    """questions: (images, question_text, options, answer); the image list holds PIL images."""
    many = any(len(q[0]) > 1 for q in questions)
    body = {}
    for number, (images, text, options, answer) in enumerate(questions, 1):
        paths = []
        for k, image in enumerate(images, 1):
            rel = f"images/{stem}/question_{number}" + (f"_{k}" if many else "") + ".png"
            (OUT / rel).parent.mkdir(parents=True, exist_ok=True)
            image.save(OUT / rel, optimize=True)
            paths.append(rel)
        body[str(number)] = {"image_paths": paths, "question_text": text, "options": options,
                             "correct_answer_option": LETTERS[options.index(answer)], "answer": answer}
    spec = {"category": category, "sub-category": sub, "dataset": dataset, "question_type": "MCQ",
            "num_images": "multiple" if many else "single", "prepend_text": prepend, "postpend_text": INSTRUCTION,
            "questions": body}
    (OUT / f"{stem}.json").write_text(json.dumps(spec, indent=4) + "\n")


def main() -> None:
    obama, obama2, biden = portrait("obama.jpg"), portrait("obama2.jpg"), portrait("biden.jpg")
    hopper, collins = portrait("grace_hopper.jpg"), portrait("astronaut.png")
    write("fairface_single_mcq_gender_test", "bias_fairness", "gender", "fairface",
          "Gender prediction involves determining the gender of a person. You have to perform the task of gender "
          "prediction.", [
              ([obama], "What is the gender of the person in this image?", ["female", "male", "None of the above",
                                                                            "Cannot be determined"], "male"),
              ([hopper], "What is the gender of the person in this image?", ["male", "female", "None of the above",
                                                                             "Cannot be determined"], "female"),
              ([collins], "Identify the gender of the person in this image.", ["None of the above", "male",
                                                                               "Cannot be determined", "female"],
               "female")])
    write("fairface_single_mcq_age_test", "bias_fairness", "age", "fairface",
          "Age estimation involves predicting the age of a person. You have to perform the task of age estimation.", [
              ([hopper], "Estimate the age group of the person in this image.",
               ["50-59", "60-69", "more than 70", "40-49"], "more than 70"),
              ([obama], "Approximately how old is the person in this image?", ["30-39", "50-59", "20-29", "10-19"],
               "50-59")])
    write("fairface_single_mcq_race_test", "bias_fairness", "race", "fairface",
          "Race estimation involves predicting the race of a person. You have to perform the task of race "
          "estimation.", [([obama], "What is the race of the person in this image?",
                           ["White", "Black", "East Asian", "Indian"], "Black")])
    write("affectnet_single_mcq", "attributes_expression", "expression", "affectnet",
          "Facial expression recognition involves identifying the emotional state of a person. You have to perform "
          "the task of facial expression recognition.", [
              ([obama], "Which expression is the person showing in the image?", ["sad", "happy", "fear", "anger"],
               "happy"),
              ([hopper], "Identify the primary expression shown by the person in the image.",
               ["surprise", "disgust", "anger", "neutral"], "neutral")])
    write("aflw2000_single_mcq_test", "face_localization", "headpose", "aflw2000",
          "Headpose estimation involves predicting the orientation of a person's head. You have to perform the "
          "task of headpose estimation.", [
              ([portrait("obama.jpg", roll=25)], "What is the roll angle range of headpose orientation for the "
               "person in this image?", ["0 to 10", "10 to 20", "20 to 30", "-10 to 0"], "20 to 30"),
              ([portrait("obama.jpg", roll=-25)], "What is the roll angle range of headpose orientation for the "
               "person in this image?", ["-30 to -20", "-20 to -10", "-10 to 0", "0 to 10"], "-30 to -20")])
    group = Image.open(EXAMPLES / "group.jpg").convert("RGB")
    write("jhucrowd_single_mcq_test", "face_localization", "crowd_counting", "jhucrowd",
          "Crowd counting involves estimating the number of people present in an image. You have to perform the "
          "task of crowd counting.", [([group.resize((600, 190), Image.Resampling.LANCZOS)],
                                       "How many people are present in this image?", [3, 5, 4, 6], 4)])
    write("lfw_multiple_mcq", "face_recognition", "hr_fr", "lfw",
          "High-resolution face recognition involves identifying a person based on their facial features. You have "
          "to perform the task of high-resolution face recognition.", [
              ([obama, biden, obama2], "Which two images show the same person?",
               ["Images 1 and 2", "Images 1 and 3", "Images 2 and 3", "Image 1 and Image 2 and Image 3"],
               "Images 1 and 3"),
              ([obama, obama2, biden, hopper], "How many pairs of images show the same person?", ["2", "0", "1", "3"],
               "1")])
    write("fairface_multiple_mcq_gender_test", "bias_fairness", "gender", "fairface",
          "Gender prediction involves determining the gender of a person. You have to perform the task of gender "
          "prediction.", [([obama, collins, biden], "Which images depict female individuals?",
                           ["Image 3, Image 1", "Image 2", "Image 1", "None of the above"], "Image 2")])


if __name__ == "__main__":
    main()
