"""Hot reload: every worker follows the compacted ``rf.models.v1`` topic and swaps models live.

The topic is read by each worker *in full* (partitions assigned, no consumer group), because
every worker needs the active model, not a share of the announcements. For each
:class:`ModelPointer` of the configured model name the watcher loads the ONNX file from the
object store, checks its hash and input spec, and only then replaces the active model; a
pointer it cannot use is logged, sent to the dead-letter topic with the reason, and the
previous model stays active.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from heimdall.core import kafka, metrics
from heimdall.core.errors import HeimdallError
from heimdall.core.objectstore import storage_options
from heimdall.core.settings import HeimdallSettings
from heimdall.ml.inference import OnnxLocalizer
from heimdall.ml.registry import load_model_bytes
from heimdall.schemas.dlq import dlq_headers
from heimdall.schemas.models import ModelPointer
from heimdall.schemas.serde import Serde

log = logging.getLogger(__name__)


class ModelWatcher:
    """Follows ``rf.models.v1`` in a background thread; :attr:`active` is the model to use."""

    def __init__(self, settings: HeimdallSettings, serde: Serde, model_name: str) -> None:
        self.settings = settings
        self.serde = serde
        self.model_name = model_name
        self.active: OnnxLocalizer | None = None
        self.refused = 0
        self.loaded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> ModelWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def apply(self, value: bytes) -> OnnxLocalizer | None:
        """Load the model a pointer announces and make it active; raise if it cannot be used."""
        pointer = self.serde.decode(value, expect=ModelPointer)
        if pointer.model_name != self.model_name:
            return None
        if not pointer.url:
            raise HeimdallError(f"model {pointer.version}: url: empty")
        try:
            spec = json.loads(pointer.input_spec)
        except json.JSONDecodeError as exc:
            raise HeimdallError(f"model {pointer.version}: input_spec is not JSON: {exc}") from None
        data = load_model_bytes(pointer.url, pointer.sha256, storage_options(self.settings))
        model = OnnxLocalizer(data, spec, f"{pointer.model_name}:{pointer.version}")
        self.active = model
        self.loaded += 1
        metrics.set_active_model(pointer.model_name, pointer.version)
        log.warning("model %s is now active", model.version)
        return model

    def _run(self) -> None:
        topic = self.settings.topics.models
        consumer = kafka.consumer(self.settings, "heimdall-model-watcher")  # assigned, not joined
        producer = kafka.producer(self.settings)
        try:
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, 0) for p in parts])
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("model watcher: %s", err)
                    continue
                value = msg.value()
                if value is None:
                    continue
                try:
                    self.apply(value)
                except Exception as exc:  # a pointer that fails is refused, the watcher goes on
                    self.refused += 1
                    if not isinstance(exc, HeimdallError):
                        exc = HeimdallError(f"cannot load the model: {type(exc).__name__}: {exc}")
                    log.error("model refused, previous one stays active: %s", exc)
                    producer.produce(
                        self.settings.topics.dlq,
                        key=msg.key(),
                        value=value,
                        headers=dlq_headers(  # type: ignore[arg-type]
                            str(exc),
                            topic=topic,
                            partition=msg.partition() or 0,
                            offset=msg.offset() or 0,
                            stage="model-watcher",
                        ),
                        on_delivery=_dead_letter_delivered,
                    )
                    producer.poll(0)
        finally:
            producer.flush(5)
            consumer.close()


def _dead_letter_delivered(err: KafkaError | None, msg: Any) -> None:
    if err is not None:  # nothing is dropped silently: say which dead letter was lost
        log.error("model watcher: dead letter of %s not delivered: %s", msg.key(), err)
