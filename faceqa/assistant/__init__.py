"""The assistant: route a question to faces and attributes, then compose the answer and its reasoning."""

from faceqa.prompts.cot import CoT, compose_cot

from .assistant import Assistant, AttributeEngine
from .conversation import Conversation
from .plan import FaceRef, Plan
from .resolver import ReferentResolver
from .router import route

__all__ = [
    "Assistant",
    "AttributeEngine",
    "CoT",
    "Conversation",
    "FaceRef",
    "Plan",
    "ReferentResolver",
    "compose_cot",
    "route",
]
