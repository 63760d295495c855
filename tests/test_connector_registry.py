"""THE connector list (connectors.registry): one entry per name, the IR's node unions hold exactly its names with
its config models, and every connector declares what the compiler and the runner read of it."""
import json
import typing

import pytest

from connectors import registry
from connectors.base import Capabilities, ConnectorConfig, Sink, Source
from ir_compiler.errors import ConnectorError, ValidationFailed
from ir_compiler.loader import load_document
from ir_compiler.models import Pipeline
from ir_compiler.models.nodes import TABLE_TAG, SourceNodes, TargetNodes


def _arms(union) -> dict:
    """{tag: model} of a tagged union (``Annotated[Union[...], discriminator]``)."""
    out = {}
    for arm in typing.get_args(typing.get_args(union)[0]):
        if typing.get_origin(arm) is typing.Annotated:
            model, tag = typing.get_args(arm)[0], typing.get_args(arm)[1].tag
        else:
            model = arm
            tag = typing.get_args(model.model_fields["connector"].annotation)[0]
        out[tag] = model
    return out


def test_a_duplicate_name_is_refused():
    one, two = registry.SOURCES["local_fs"], type(registry.SOURCES["local_fs"])()
    with pytest.raises(ValueError, match="two source connectors are named 'local_fs'"):
        registry.by_name("source", [one, two])


def test_the_ir_unions_hold_exactly_the_registry_with_its_config_models():
    sources, targets = _arms(SourceNodes), _arms(TargetNodes)
    assert list(sources) == list(registry.SOURCES)
    assert set(targets) - {TABLE_TAG} == set(registry.SINKS)
    for name, model in sources.items():
        assert model.model_fields["config"].annotation is registry.SOURCES[name].config
    for name, model in targets.items():
        if name != TABLE_TAG:
            assert model.model_fields["config"].annotation is registry.SINKS[name].config


@pytest.mark.parametrize("connector", list(registry.SOURCES.values()) + list(registry.SINKS.values()),
                         ids=lambda c: f"{type(c).__name__}")
def test_every_connector_declares_itself(connector):
    assert isinstance(connector, (Source, Sink)) and connector.name and connector.doc
    assert issubclass(connector.config, ConnectorConfig) and isinstance(connector.capabilities, Capabilities)
    reason = connector.available()
    assert reason is None or (isinstance(reason, str) and connector.name in reason)


def test_unknown_names_are_connector_errors():
    with pytest.raises(ConnectorError, match="unknown source connector 'nope'"):
        registry.get_source("nope")
    with pytest.raises(ConnectorError, match="unknown sink connector 'nope'"):
        registry.get_sink("nope")


def test_the_json_schema_documents_every_connector_config():
    schema = Pipeline.model_json_schema(by_alias=True)
    defs = schema["$defs"]
    for name, c in list(registry.SOURCES.items()) + list(registry.SINKS.items()):
        assert c.config.__name__ in defs, name
    text = json.dumps(schema)
    assert '"propertyName": "connector"' in text and '"bootstrapServers"' in text and '"stagingFolder"' in text


def _doc(node: dict) -> dict:
    return {"kind": "pipeline", "id": "p", "nodes": [node]}


@pytest.mark.parametrize("node, path", [
    ({"id": "s", "kind": "source", "connector": "local_fs", "config": {"path": "/in/", "pathh": 1}},
     "nodes[0].config.pathh"),
    ({"id": "s", "kind": "source", "connector": "kafka_consumer",
      "config": {"bootstrapServers": "h:1", "topics": "t", "groupId": "g", "startingOffsets": "first"}},
     "nodes[0].config.startingOffsets"),
    ({"id": "s", "kind": "source", "connector": "kafka", "config": {}}, "nodes[0].connector"),
    ({"id": "s", "kind": "source", "config": {}}, "nodes[0].connector"),
    ({"id": "t", "kind": "target", "input": "s", "connector": "kafka_producer",
      "config": {"bootstrapServers": "h:1", "topic": "t", "topicc": "t"}}, "nodes[0].config.topicc"),
    ({"id": "t", "kind": "target", "input": "s", "connector": "ftp", "config": {"path": "/out"}},
     "nodes[0].connector"),
    ({"id": "t", "kind": "target", "input": "s", "schema": "a.b", "config": {"path": "/out"}}, "nodes[0].config"),
])
def test_a_config_problem_is_one_error_at_its_json_path(node, path):
    with pytest.raises(ValidationFailed) as info:
        load_document(_doc(node))
    assert [(i.path, i.node_id) for i in info.value.issues] == [(path, node["id"])]


def test_a_loaded_config_is_its_typed_model():
    p, _ = load_document(_doc({"id": "s", "kind": "source", "connector": "kafka_consumer",
                               "config": {"bootstrapServers": "h:1", "topics": "t", "groupId": "g"}}))
    cfg = p.nodes[0].config
    assert type(cfg) is registry.SOURCES["kafka_consumer"].config and cfg.startingOffsets == "committed"
