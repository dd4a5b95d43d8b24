"""A minimal protobuf wire-format reader.

No protobuf runtime is a dependency of the pipeline, and the only protobuf we read (MediaPipe's geometry metadata in
the FaceLandmarker .task bundle) needs varints, fixed32 floats and nested messages. Schema knowledge stays with the
caller: this module only splits bytes into (field number -> values) and decodes repeated scalars whether the writer
packed them (proto3 default) or not (proto2 default; MediaPipe's file is written that way).
"""

from __future__ import annotations

import struct

import numpy as np

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5

Fields = dict[int, list[tuple[int, int | bytes]]]


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at `pos`; returns (value, next position)."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")


def parse_message(buf: bytes) -> Fields:
    """Split a serialized message into {field number: [(wire type, raw value), ...]} in wire order.

    Varints come back as int, LEN fields and fixed32/fixed64 as their bytes (decode them with the helpers below).
    """
    fields: Fields = {}
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError(f"invalid field number 0 at byte {pos}")
        value: int | bytes
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == FIXED64:
            value, pos = bytes(buf[pos : pos + 8]), pos + 8
        elif wire == LEN:
            length, pos = read_varint(buf, pos)
            value, pos = bytes(buf[pos : pos + length]), pos + length
        elif wire == FIXED32:
            value, pos = bytes(buf[pos : pos + 4]), pos + 4
        else:  # groups are deprecated and absent from the files we read
            raise ValueError(f"unsupported wire type {wire} (field {number})")
        if pos > n:
            raise ValueError(f"truncated field {number}")
        fields.setdefault(number, []).append((wire, value))
    return fields


def repeated_floats(fields: Fields, number: int) -> np.ndarray:
    """All values of a repeated `float` field, packed or not, as float32."""
    out: list[np.ndarray] = []
    for wire, value in fields.get(number, []):
        if wire == FIXED32:
            out.append(np.frombuffer(value, dtype="<f4"))
        elif wire == LEN:
            if len(value) % 4:
                raise ValueError(f"packed float field {number} has {len(value)} bytes")
            out.append(np.frombuffer(value, dtype="<f4"))
        else:
            raise ValueError(f"field {number}: wire type {wire} is not a float")
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def repeated_varints(fields: Fields, number: int) -> np.ndarray:
    """All values of a repeated varint field (uint32/uint64/int/enum), packed or not, as int64."""
    out: list[int] = []
    for wire, value in fields.get(number, []):
        if wire == VARINT:
            out.append(int(value))  # type: ignore[arg-type]
        elif wire == LEN:
            pos = 0
            while pos < len(value):  # type: ignore[arg-type]
                v, pos = read_varint(value, pos)  # type: ignore[arg-type]
                out.append(v)
        else:
            raise ValueError(f"field {number}: wire type {wire} is not a varint")
    return np.asarray(out, dtype=np.int64)


def single_varint(fields: Fields, number: int, default: int = 0) -> int:
    """An optional scalar varint field (last occurrence wins, as in protobuf)."""
    values = repeated_varints(fields, number)
    return int(values[-1]) if values.size else default


def single_float(fields: Fields, number: int, default: float = 0.0) -> float:
    values = repeated_floats(fields, number)
    return float(values[-1]) if values.size else default


def submessages(fields: Fields, number: int) -> list[Fields]:
    """Parsed embedded messages of a (repeated) message field."""
    out = []
    for wire, value in fields.get(number, []):
        if wire != LEN:
            raise ValueError(f"field {number}: wire type {wire} is not a message")
        out.append(parse_message(value))  # type: ignore[arg-type]
    return out


def encode_varint(value: int) -> bytes:
    """Inverse of read_varint (for tests and tiny fixtures)."""
    if value < 0:
        value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_key(number: int, wire: int) -> bytes:
    return encode_varint((number << 3) | wire)


def encode_float(value: float) -> bytes:
    return struct.pack("<f", value)
