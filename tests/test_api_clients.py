"""Clients no one here wrote — the official `openai` package and LangChain's ChatOpenAI — against a real server.

The questions are about the composed group photo (left to right: Obama, Collins, Biden,
Hopper); the expected answers are what the embedded engine reads from it (see
test_engine.py): person 1 looks 50-59 and happy, persons 2 and 4 are read as female,
person 4 looks oldest, persons 1 and 2 look happy.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from api_server import EXAMPLES, data_url, group_url, running
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from faceqa.app.config import ServerConfig
from faceqa.schema import Answer, ImageReport

CHAIN = "Is the second person smiling? Explain step by step."


@pytest.fixture(scope="module")
def server():
    with running(ServerConfig()) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0) as client:
        yield client


def user(question: str, *images: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": question},
                                        *({"type": "image_url", "image_url": {"url": u}} for u in images)]}


def structured(completion) -> Answer:
    return Answer.model_validate(completion.model_extra["faceqa"])


# --- the openai package --------------------------------------------------------------------------------


def test_models_are_what_the_server_serves(client):
    assert [m.id for m in client.models.list()] == ["faceqa-local"]
    assert client.models.retrieve("faceqa-local").id == "faceqa-local"
    with pytest.raises(openai.BadRequestError, match="not configured"):
        client.models.retrieve("faceqa-vlm")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


@pytest.mark.parametrize(("question", "faces", "words"), [
    ("How old does the person on the far left look?", [1], "50-59"),
    ("Is the second person a man or a woman?", [2], "female"),
    ("How many people are in the photo?", [1, 2, 3, 4], "4 people"),
    ("Who looks the oldest?", [4], "Person 4"),
    ("How many people are smiling?", [1, 2], "2 of 4"),
])
def test_openai_client(client, question, faces, words):
    completion = client.chat.completions.create(model="faceqa-local", messages=[user(question, group_url())])
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert words in choice.message.content
    assert structured(completion).faces == faces
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_compound_questions_get_every_part_answered(client):
    question = "how many people are there, and what is the gender of the person on the far left?"
    completion = client.chat.completions.create(model="faceqa-local", messages=[user(question, group_url())])
    text = completion.choices[0].message.content
    answer = structured(completion)
    assert answer.task == "compound" and [p.task for p in answer.result.parts] == ["count", "attribute"]
    count, gender = answer.result.parts
    assert "4 people" in text and count.result.count == 4
    assert gender.faces == [1] and "Person 1 (far left) appears male" in text
    assert text.index("4 people") < text.index("appears male")


def test_openai_streaming_reasoning(client):
    whole = client.chat.completions.create(model="faceqa-local", messages=[user(CHAIN, group_url())])
    stream = client.chat.completions.create(model="faceqa-local", messages=[user(CHAIN, group_url())], stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 5
    assert text == whole.choices[0].message.content
    assert "Key observations" in text and "Conclusion" in text and "happ" in text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_raw_stream_ends_with_done(server):
    body = {"model": "faceqa-local", "stream": True, "messages": [user("Who looks the oldest?", group_url())]}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    last = json.loads(events[-2].removeprefix("data: "))
    assert last["choices"][0]["finish_reason"] == "stop" and last["faceqa"]["faces"] == [4]


def test_async_client_concurrently(server):
    async def main() -> list:
        async with openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0) as client:
            questions = ["Who looks the oldest?", "Who looks the youngest?", CHAIN, "How many people are smiling?"]
            return await asyncio.gather(*(
                client.chat.completions.create(model="faceqa-local", messages=[user(q, group_url())])
                for q in questions))

    oldest, youngest, chain, smiling = asyncio.run(main())
    assert structured(oldest).faces == [4] and structured(youngest).faces == [2]
    assert structured(chain).task == "reasoning" and structured(smiling).faces == [1, 2]


def test_async_streaming(server):
    async def main() -> str:
        async with openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="faceqa-local", messages=[user("Who looks the oldest?", group_url())], stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream])

    assert asyncio.run(main()).startswith("Person 4 (far right) looks the oldest")


def test_follow_ups_resolve_against_the_conversation(client):
    """The server keeps no session: the faces talked about come back from the replayed questions."""
    first = client.chat.completions.create(model="faceqa-local",
                                           messages=[user("Who looks the oldest?", group_url())])
    history = [user("Who looks the oldest?", group_url()),
               {"role": "assistant", "content": first.choices[0].message.content}]
    he = client.chat.completions.create(model="faceqa-local", messages=[*history, user("How old does he look?")])
    assert structured(he).faces == [4] and "70 or older" in he.choices[0].message.content
    woman = client.chat.completions.create(model="faceqa-local", messages=[
        *history, user("How old does he look?"), {"role": "assistant", "content": "..."},
        user("And the woman on the left?")])
    assert structured(woman).faces == [2]


def test_identity_across_photos(client):
    obama2 = data_url((EXAMPLES / "obama2.jpg").read_bytes())
    same = client.chat.completions.create(model="faceqa-local", messages=[user(
        "Is the first person in photo 1 the same person as the one in photo 2?", group_url(), obama2)])
    assert "the same person" in same.choices[0].message.content
    biden = data_url((EXAMPLES / "biden.jpg").read_bytes())
    history = [user("How many people are in photo 1?", group_url(), biden), {"role": "assistant", "content": "4"}]
    different = client.chat.completions.create(model="faceqa-local", messages=[*history, user(
        "Is the first person in photo 1 the same person as the one in photo 2?")])
    assert "different people" in different.choices[0].message.content


def test_n_max_tokens_temperature_stop(client):
    completion = client.chat.completions.create(
        model="faceqa-local", messages=[user("Who looks the oldest?", group_url())], n=3, max_tokens=5,
        temperature=1.3, top_p=0.5, seed=7)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert {c.message.content for c in completion.choices} == {"Person 4 (far right"}
    assert {c.finish_reason for c in completion.choices} == {"length"}
    assert completion.usage.completion_tokens == 15
    stopped = client.chat.completions.create(model="faceqa-local", stop=[" looks"],
                                             messages=[user("Who looks the oldest?", group_url())])
    assert stopped.choices[0].message.content == "Person 4 (far right)"


def test_json_object_answers(client):
    completion = client.chat.completions.create(model="faceqa-local", response_format={"type": "json_object"},
                                                messages=[user("Who looks the oldest?", group_url())])
    answer = Answer.model_validate_json(completion.choices[0].message.content)
    assert answer.faces == [4] and answer.task == "compare"


class Oldest(BaseModel):
    answer: str
    faces: list[int]
    status: str


def test_json_schema_answers_through_parse(client):
    completion = client.chat.completions.parse(model="faceqa-local", response_format=Oldest,
                                               messages=[user("Who looks the oldest?", group_url())])
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Oldest) and parsed.faces == [4] and parsed.status == "ok"
    assert set(json.loads(completion.choices[0].message.content)) == {"answer", "faces", "status"}


def test_errors_reach_the_client_typed(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="faceqa-local", messages=[user("How old?", data_url(b"not a photo"))])
    assert caught.value.code == "invalid_image" and caught.value.param == "messages[0].content[1].image_url"
    with pytest.raises(openai.BadRequestError, match="no photo"):
        client.chat.completions.create(model="faceqa-local", messages=[user("How old is she?")])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[user("hi", group_url())])


# --- LangChain -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat(server):
    return ChatOpenAI(base_url=f"{server}/v1", api_key="unused", model="faceqa-local", max_retries=0,
                      temperature=0.2)


def photo_message(question: str) -> HumanMessage:
    return HumanMessage(content=[{"type": "text", "text": question},
                                 {"type": "image_url", "image_url": {"url": group_url()}}])


def test_langchain_invoke(chat):
    reply = chat.invoke([photo_message("Who looks the youngest?")])
    assert isinstance(reply, AIMessage) and reply.content.startswith("Person 2")
    assert reply.usage_metadata["output_tokens"] > 0


def test_langchain_stream_reasoning(chat):
    chunks = list(chat.stream([photo_message(CHAIN)]))
    text = "".join(c.content for c in chunks)
    assert len(chunks) > 5 and "Key observations" in text and "Conclusion" in text


def test_langchain_history(chat):
    history = [photo_message("Who looks the oldest?"), AIMessage("Person 4 (far right) looks the oldest."),
               HumanMessage("Is he smiling?")]
    reply = chat.invoke(history)
    assert reply.content.startswith("No: person 4") and "neutral" in reply.content


def test_langchain_async_batch(chat):
    replies = asyncio.run(chat.abatch([[photo_message("Who looks the oldest?")],
                                       [photo_message("How many people are in the photo?")]]))
    assert replies[0].content.startswith("Person 4") and "4 people" in replies[1].content


def test_langchain_structured_output(chat):
    oldest = chat.with_structured_output(Oldest, method="json_schema").invoke([photo_message("Who looks the oldest?")])
    assert isinstance(oldest, Oldest) and oldest.faces == [4]
    loose = chat.with_structured_output(method="json_mode").invoke([photo_message("Who looks the oldest?")])
    assert Answer.model_validate(loose).faces == [4]


# --- faceqa's own endpoints ----------------------------------------------------------------------------


def test_face_analysis_endpoint(server):
    obama = data_url((EXAMPLES / "obama.jpg").read_bytes())
    response = httpx.post(f"{server}/v1/faces/analyze", timeout=60,
                          json={"images": [group_url(), obama, data_url(b"broken")]})
    assert response.status_code == 200
    group, single, broken = response.json()["data"]
    group, single = ImageReport.model_validate(group), ImageReport.model_validate(single)
    assert [f.id for f in group.faces] == [1, 2, 3, 4]
    assert [f.box[0] for f in group.faces] == sorted(f.box[0] for f in group.faces)
    assert len(single.faces) == 1 and single.faces[0].embedding is None
    assert "not an image" in broken["error"]
    with_embeddings = httpx.post(f"{server}/v1/faces/analyze", timeout=60,
                                 json={"images": [obama], "embeddings": True}).json()["data"][0]
    assert len(with_embeddings["faces"][0]["embedding"]) > 100


def test_health_metrics_and_openapi(server):
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ok" and health["models"] == ["faceqa-local"]
    metrics = httpx.get(f"{server}/metrics").text
    assert 'faceqa_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}' in metrics
    assert "faceqa_http_request_duration_seconds_bucket" in metrics and "faceqa_analysis_cache_total" in metrics
    document = httpx.get(f"{server}/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/faces/analyze", "/v1/models", "/health", "/metrics"} <= set(
        document["paths"])
    assert document["components"]["schemas"]["ChatCompletionRequest"]["properties"]["model"]["enum"] == [
        "faceqa-local"]
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert "422" not in chat and {"400", "404", "413"} <= set(chat)
