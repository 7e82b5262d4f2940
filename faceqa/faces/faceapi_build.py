"""Build @vladmandic/face-api's expression and age/gender networks as ONNX files from their TFJS weights.

face-api ships its networks as TFJS *layers* weights (a manifest plus a `.bin` of uint8-quantised
tensors); the architectures live in its TypeScript (`src/faceFeatureExtractor`, `src/xception`). This
module rebuilds those two small architectures with the `onnx` helper API, graph for graph:

- expression: four dense blocks of depthwise-separable convolutions (32, 64, 128, 256 channels, each
  halving the 112x112 input), 7x7 average pool, a 256 -> 7 fully connected layer, softmax.
- age/gender: TinyXception with two middle blocks, 7x7 average pool, 512 -> 1 (age in years) and
  512 -> 2 (softmax over [male, female]).

TensorFlow's 'same' padding puts the odd pixel after the image, which is ONNX's SAME_UPPER. The graph
takes RGB bytes as float NCHW 1x3x112x112 (batch free) and normalises inside, as face-api does:
(byte - channel mean) / 255. Output is deterministic, so `faceqa models pull` can pin its sha256.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .faceapi_expression import INPUT_SIZE

MEAN_RGB = (122.782, 117.001, 104.298)
OPSET = 17


def dequantise(manifest: list[dict], weights: bytes) -> dict[str, np.ndarray]:
    """Every tensor of a TFJS weights manifest, uint8 entries mapped back with their scale and minimum."""
    entries = [entry for group in manifest for entry in group["weights"]]
    needed = sum(int(np.prod(e["shape"])) * (1 if e.get("quantization") else 4) for e in entries)
    if needed != len(weights):
        raise ValueError(f"weights file holds {len(weights)} bytes, the manifest describes {needed}")
    tensors, offset = {}, 0
    for entry in entries:
        count = int(np.prod(entry["shape"]))
        quantisation = entry.get("quantization")
        if quantisation:
            raw = np.frombuffer(weights, dtype=np.uint8, count=count, offset=offset)
            values = raw.astype(np.float32) * np.float32(quantisation["scale"]) + np.float32(quantisation["min"])
            offset += count
        else:
            values = np.frombuffer(weights, dtype=np.float32, count=count, offset=offset).copy()
            offset += 4 * count
        tensors[entry["name"]] = values.reshape(entry["shape"])
    return tensors


class _Graph:
    """A tiny builder: each method appends nodes and returns the name of its output."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        self.tensors = tensors
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint: str, value: np.ndarray) -> str:
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def op(self, kind: str, inputs: list[str], **attributes: Any) -> str:
        output = self._name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [output], **attributes))
        return output

    def conv(self, x: str, prefix: str, stride: int) -> str:
        """A full convolution; TFJS filters are [kh, kw, in, out]."""
        weight = self.tensors[f"{prefix}/filters"].transpose(3, 2, 0, 1)
        return self.op("Conv", [x, self.constant("w", weight), self.constant("b", self.tensors[f"{prefix}/bias"])],
                       strides=[stride, stride], auto_pad="SAME_UPPER")

    def separable(self, x: str, prefix: str, stride: int = 1) -> str:
        """tf.separableConv2d + bias: depthwise [kh, kw, c, 1] then pointwise [1, 1, c, out]."""
        depthwise = self.tensors[f"{prefix}/depthwise_filter"]
        channels = depthwise.shape[2]
        x = self.op("Conv", [x, self.constant("dw", depthwise.transpose(2, 3, 0, 1))],
                    strides=[stride, stride], auto_pad="SAME_UPPER", group=channels)
        pointwise = self.tensors[f"{prefix}/pointwise_filter"].transpose(3, 2, 0, 1)
        return self.op("Conv", [x, self.constant("pw", pointwise), self.constant("b", self.tensors[f"{prefix}/bias"])])

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def add(self, *xs: str) -> str:
        total = xs[0]
        for x in xs[1:]:
            total = self.op("Add", [total, x])
        return total

    def dense(self, x: str, prefix: str) -> str:
        return self.op("Gemm", [x, self.constant("w", self.tensors[f"{prefix}/weights"]),
                                self.constant("b", self.tensors[f"{prefix}/bias"])])

    def normalised_input(self) -> str:
        mean = np.array(MEAN_RGB, dtype=np.float32).reshape(1, 3, 1, 1)
        centred = self.op("Sub", ["images", self.constant("mean", mean)])
        return self.op("Mul", [centred, self.constant("scale", np.array(1 / 255, dtype=np.float32))])

    def pooled(self, x: str) -> str:
        """avgPool 7x7 valid on the 7x7 map, flattened to one vector per image."""
        return self.op("Flatten", [self.op("GlobalAveragePool", [x])])

    def model(self, outputs: dict[str, str], shapes: dict[str, list[int | str]]) -> onnx.ModelProto:
        renamed = [helper.make_node("Identity", [source], [name]) for name, source in outputs.items()]
        graph = helper.make_graph(
            [*self.nodes, *renamed], "faceapi",
            [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE])],
            [helper.make_tensor_value_info(name, TensorProto.FLOAT, shapes[name]) for name in outputs],
            self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="faceqa")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def _dense_block(g: _Graph, x: str, prefix: str, first: bool) -> str:
    out1 = g.relu(g.conv(x, f"{prefix}/conv0", 2) if first else g.separable(x, f"{prefix}/conv0", 2))
    out2 = g.separable(out1, f"{prefix}/conv1")
    out3 = g.separable(g.relu(g.add(out1, out2)), f"{prefix}/conv2")
    out4 = g.separable(g.relu(g.add(out1, out2, out3)), f"{prefix}/conv3")
    return g.relu(g.add(out1, out2, out3, out4))


def expression_model(tensors: dict[str, np.ndarray]) -> onnx.ModelProto:
    """FaceExpressionNet: probabilities over face-api's labels (neutral, happy, sad, angry, fearful,
    disgusted, surprised)."""
    g = _Graph(tensors)
    x = g.normalised_input()
    for index in range(4):
        x = _dense_block(g, x, f"dense{index}", first=index == 0)
    probabilities = g.op("Softmax", [g.dense(g.pooled(x), "fc")], axis=1)
    return g.model({"probabilities": probabilities}, {"probabilities": ["batch", 7]})


def _reduction_block(g: _Graph, x: str, prefix: str, activate_input: bool) -> str:
    out = g.relu(x) if activate_input else x
    out = g.separable(out, f"{prefix}/separable_conv0")
    out = g.separable(g.relu(out), f"{prefix}/separable_conv1")
    out = g.op("MaxPool", [out], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    return g.add(out, g.conv(x, f"{prefix}/expansion_conv", 2))


def _main_block(g: _Graph, x: str, prefix: str) -> str:
    out = x
    for index in range(3):
        out = g.separable(g.relu(out), f"{prefix}/separable_conv{index}")
    return g.add(out, x)


def age_gender_model(tensors: dict[str, np.ndarray]) -> onnx.ModelProto:
    """AgeGenderNet (TinyXception, 2 middle blocks): age in years and softmax over [male, female]."""
    g = _Graph(tensors)
    x = g.relu(g.conv(g.normalised_input(), "entry_flow/conv_in", 2))
    x = _reduction_block(g, x, "entry_flow/reduction_block_0", activate_input=False)
    x = _reduction_block(g, x, "entry_flow/reduction_block_1", activate_input=True)
    for index in range(2):
        x = _main_block(g, x, f"middle_flow/main_block_{index}")
    x = _reduction_block(g, x, "exit_flow/reduction_block", activate_input=True)
    x = g.pooled(g.relu(g.separable(x, "exit_flow/separable_conv")))
    age = g.dense(x, "fc/age")
    gender = g.op("Softmax", [g.dense(x, "fc/gender")], axis=1)
    return g.model({"age": age, "gender": gender}, {"age": ["batch", 1], "gender": ["batch", 2]})


BUILDERS: dict[str, Callable[[dict[str, np.ndarray]], onnx.ModelProto]] = {
    "face_expression_model": expression_model,
    "age_gender_model": age_gender_model,
}


def build(model_dir: Path, name: str) -> bytes:
    """The serialised ONNX model for one of BUILDERS, from `<name>-weights_manifest.json` and its .bin."""
    manifest = json.loads((model_dir / f"{name}-weights_manifest.json").read_text())
    weights = b"".join((model_dir / path).read_bytes() for group in manifest for path in group["paths"])
    return BUILDERS[name](dequantise(manifest, weights)).SerializeToString()
