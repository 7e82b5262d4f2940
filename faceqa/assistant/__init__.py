"""The assistant: route a question to faces and attributes, then compose the answer and its reasoning.

normalize -> split compound questions -> policy -> read -> ground -> plan (router.route)
-> evidence (evidence.gather) -> compose (compose.Composer). `referring.refer` is the one
definition of what a referring phrase means, shared with the dataset builder and the evaluator.
"""

from faceqa.prompts.cot import CoT, compose_cot

from .assistant import Assistant, AttributeEngine
from .conversation import Conversation
from .plan import FaceRef, Plan
from .referring import Person, refer
from .resolver import ReferentResolver
from .router import route

__all__ = [
    "Assistant",
    "AttributeEngine",
    "CoT",
    "Conversation",
    "FaceRef",
    "Person",
    "Plan",
    "ReferentResolver",
    "compose_cot",
    "refer",
    "route",
]
