"""Labelled face datasets in their native release layouts (FairFace, UTKFace, AffectNet, RAF-DB, generic CSV and
folders), read into one record type. The dataset builder and the evaluator both read through here."""
