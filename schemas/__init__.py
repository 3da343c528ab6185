"""Avro schemas of every hub record, their codec, and their typed Python models."""

from schemas.codec import (
    Codec,
    CodecError,
    ConfluentCodec,
    CorruptRecordError,
    Decoded,
    DecodeError,
    EncodeError,
    SchemaRegistryClient,
    SingleObjectCodec,
    UnknownWriterSchemaError,
    make_codec,
)
from schemas.store import SchemaEntry, SchemaStore, default_store

__all__ = [
    "Codec",
    "CodecError",
    "ConfluentCodec",
    "CorruptRecordError",
    "DecodeError",
    "Decoded",
    "EncodeError",
    "SchemaEntry",
    "SchemaRegistryClient",
    "SchemaStore",
    "SingleObjectCodec",
    "UnknownWriterSchemaError",
    "default_store",
    "make_codec",
]
