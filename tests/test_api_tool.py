"""FaceAnalysisTool inside a LangChain tool-calling loop, driven by LangChain's fake chat models (no LLM)."""

from __future__ import annotations

import asyncio

import pytest
from api_server import EXAMPLES, data_url
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from faceqa.app.langchain_tool import FaceAnalysisTool
from faceqa.schema import Answer, ImageReport

GROUP = str(EXAMPLES / "group.jpg")


@pytest.fixture(scope="module")
def tool(engine):
    from faceqa.assistant import Assistant

    return FaceAnalysisTool(assistant=Assistant(engine=engine))


def run_agent(tool: FaceAnalysisTool, calls: list[dict]) -> tuple[list, AIMessage]:
    """The tool-calling loop an agent runs: the model asks for tools, gets their messages, then answers."""
    model = GenericFakeChatModel(messages=iter([
        AIMessage(content="", tool_calls=[{"name": tool.name, "args": args, "id": f"call-{i}"}
                                          for i, args in enumerate(calls)]),
        AIMessage(content="Done looking."),
    ]))
    messages: list = [HumanMessage("Tell me about the people in my photo.")]
    request = model.invoke(messages)
    messages.append(request)
    results = [tool.invoke(call) for call in request.tool_calls]
    messages.extend(results)
    return results, model.invoke(messages)


def test_schema_for_tool_calling_models(tool):
    spec = convert_to_openai_tool(tool)["function"]
    assert spec["name"] == "face_analysis" and "left to right" in spec["description"]
    assert spec["parameters"]["required"] == ["image"]
    assert set(spec["parameters"]["properties"]) == {"image", "question"}


def test_questions_through_a_tool_call(tool):
    (oldest, chain), final = run_agent(tool, [
        {"image": GROUP, "question": "Who looks the oldest?"},
        {"image": data_url((EXAMPLES / "group.jpg").read_bytes()),
         "question": "Is the second person smiling? Explain step by step."},
    ])
    assert isinstance(oldest, ToolMessage) and oldest.tool_call_id == "call-0" and oldest.status == "success"
    assert oldest.content.startswith("Person 4 (far right) looks the oldest")
    assert Answer.model_validate(oldest.artifact).faces == [4]
    assert "Key observations" in chain.content and Answer.model_validate(chain.artifact).task == "reasoning"
    assert final.content == "Done looking."


def test_reports_without_a_question(tool):
    [message], _ = run_agent(tool, [{"image": GROUP}])
    lines = message.content.splitlines()
    assert lines[0] == "4 face(s), numbered left to right:"
    assert '"face": 2' in lines[2] and '"apparent_gender": {"label": "Female"' in lines[2]
    assert "landmarks" not in message.content
    report = ImageReport.model_validate(message.artifact)
    assert [f.id for f in report.faces] == [1, 2, 3, 4]


@pytest.mark.parametrize(("image", "words"), [
    ("https://example.com/face.jpg", "only local file paths and data: URLs"),
    (str(EXAMPLES / "missing.jpg"), "no such file"),
    (str(EXAMPLES / "README.md"), "not an image"),
    ("data:text/plain;base64,aGVsbG8=", "not an image"),
])
def test_bad_images_come_back_as_tool_errors(tool, image, words):
    [message], _ = run_agent(tool, [{"image": image, "question": "How old?"}])
    assert message.status == "error" and words in message.content


def test_image_folder_restriction(engine, tmp_path):
    from faceqa.assistant import Assistant

    fenced = FaceAnalysisTool(assistant=Assistant(engine=engine), image_dir=tmp_path)
    [message], _ = run_agent(fenced, [{"image": GROUP}])
    assert message.status == "error" and "outside the folder" in message.content
    (tmp_path / "group.jpg").write_bytes((EXAMPLES / "group.jpg").read_bytes())
    [message], _ = run_agent(fenced, [{"image": str(tmp_path / "group.jpg")}])
    assert message.status == "success"


def test_async_tool_call(tool):
    call = {"name": tool.name, "args": {"image": GROUP, "question": "How many people are smiling?"}, "id": "a",
            "type": "tool_call"}
    message = asyncio.run(tool.ainvoke(call))
    assert Answer.model_validate(message.artifact).faces == [1, 2]
