"""Collage questions mean what the assistant reads them to mean: one definition of a referring phrase."""

from __future__ import annotations

import random

from faceqa.finetune.tasks import composite_samples, means, position_referent
from faceqa.prompts.taxonomy import AGE_GROUPS, EMOTIONS, GENDERS, RACES


def _collage(rng: random.Random) -> list[dict[str, str]]:
    """2-4 people with random labels; some without a gender, as AffectNet faces are."""
    people = []
    for _ in range(rng.randint(2, 4)):
        person = {"emotion": rng.choice(EMOTIONS), "age_group": rng.choice(AGE_GROUPS), "race": rng.choice(RACES)}
        if rng.random() < 0.85:
            person["gender"] = rng.choice(GENDERS)
        people.append(person)
    return people


def test_every_collage_question_points_at_its_subject_by_the_assistants_rules():
    """3,000 collages: each question's phrase resolves, by the assistant's resolver, to the face it is about."""
    rng = random.Random(0)
    asked = gendered_ordinals = disagreements = 0
    for n in range(3000):
        people = _collage(rng)
        for sample in composite_samples(f"c{n}", people, seed=0, count=3):
            if sample.referent is None:
                continue
            asked += 1
            gendered_ordinals += any(f" {w} " in f" {sample.referent} " for w in ("man", "woman")) and any(
                o in sample.referent for o in ("second", "third"))
            disagreements += means(sample.referent, people) != [sample.subject]
    assert disagreements == 0
    assert asked > 3000 and gendered_ordinals > 40  # the hard case is exercised, not avoided


def test_the_second_man_is_the_second_of_the_men():
    people = [{"gender": "Female"}, {"gender": "Male"}, {"gender": "Female"}, {"gender": "Male"}]
    phrases = {position_referent(3, people, random.Random(seed), gender="Male") for seed in range(60)}
    assert "the second man from the left" in phrases or "the man on the right" in phrases
    assert "the fourth man from the left" not in phrases and "the second person from the left" not in phrases
    assert all(means(p, people) == [3] for p in phrases if p)
