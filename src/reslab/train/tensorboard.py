"""A minimal TensorBoard event-file writer for scalars, with no dependency on TensorFlow or tensorboard.

An event file is a sequence of TFRecords (length, masked CRC-32C of the length, payload, masked CRC-32C
of the payload) whose payloads are serialised ``Event`` protocol buffers. Only the fields needed for
scalars are written: Event{wall_time=1 (double), step=2 (int64), file_version=3 (string),
summary=5 (Summary{value=1 (Value{tag=1 (string), simple_value=2 (float)})})}.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # two's complement for negative int64
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _field(number, 2) + _varint(len(payload)) + payload


def encode_event(*, wall_time: float, step: int, file_version: str | None = None,
                 scalars: dict[str, float] | None = None) -> bytes:
    msg = _field(1, 1) + struct.pack("<d", wall_time) + _field(2, 0) + _varint(step)
    if file_version is not None:
        msg += _bytes_field(3, file_version.encode())
    if scalars:
        values = b"".join(
            _bytes_field(1, _bytes_field(1, tag.encode()) + _field(2, 5) + struct.pack("<f", float(v)))
            for tag, v in scalars.items())
        msg += _bytes_field(5, values)
    return msg


def frame_record(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked_crc(header)) + payload + struct.pack("<I", masked_crc(payload))


class EventWriter:
    """Appends scalar events to ``events.out.tfevents.<time>.<host>`` in ``log_dir``."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = self.log_dir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}"
        self._file = open(self.path, "ab")
        self._write(encode_event(wall_time=now, step=0, file_version="brain.Event:2"))

    def _write(self, payload: bytes) -> None:
        self._file.write(frame_record(payload))

    def add_scalars(self, step: int, scalars: dict[str, float]) -> None:
        self._write(encode_event(wall_time=time.time(), step=step, scalars=scalars))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_scalars(path: str | Path) -> list[tuple[int, str, float]]:
    """Parse an event file written by :class:`EventWriter`, checking every CRC: (step, tag, value)."""
    data = Path(path).read_bytes()
    out, pos = [], 0
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        payload = data[pos + 12:pos + 12 + length]
        (pcrc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if hcrc != masked_crc(header) or pcrc != masked_crc(payload):
            raise ValueError(f"bad CRC in record at byte {pos}")
        pos += 16 + length
        out.extend(_parse_event(payload))
    return out


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        result |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return result, i
        shift += 7


def _parse_fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        elif wire == 2:
            n, i = _read_varint(buf, i)
            value, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, value


def _parse_event(payload: bytes) -> list[tuple[int, str, float]]:
    step, scalars = 0, []
    for number, value in _parse_fields(payload):
        if number == 2:
            step = value
        elif number == 5:
            for vnum, val in _parse_fields(value):
                if vnum != 1:
                    continue
                tag, simple = "", 0.0
                for fnum, fval in _parse_fields(val):
                    if fnum == 1:
                        tag = fval.decode()
                    elif fnum == 2:
                        (simple,) = struct.unpack("<f", fval)
                scalars.append((tag, simple))
    return [(step, tag, v) for tag, v in scalars]
