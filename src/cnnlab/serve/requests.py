"""Reading a ``POST /predict`` body into memory: size-capped, multipart or JSON, never a file on disk.

Starlette's own form parser spools uploads above 1 MB to temporary files; this parser keeps every
part in memory, which is safe because the whole body is capped at ``max_bytes`` before parsing.
Every problem is a :class:`BadRequest` carrying the HTTP status and a one-line message.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field


class BadRequest(Exception):
    """A client error: HTTP ``status`` and a one-line message for the JSON reply."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Upload:
    name: str
    data: bytes


@dataclass
class PredictRequest:
    images: list[Upload] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)


async def read_body(request, max_bytes: int) -> bytes:
    """The request body, refusing (413) anything over ``max_bytes`` before and while reading it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise BadRequest(400, f"Content-Length: expected a number of bytes, got {declared!r}") from None
        if length > max_bytes:
            raise BadRequest(413, f"request body of {length} bytes exceeds the limit of {max_bytes} bytes")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise BadRequest(413, f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_predict_body(content_type: str, body: bytes, max_images: int) -> PredictRequest:
    """Images and options from a multipart form (file parts, plus fields) or JSON (base64 images)."""
    from python_multipart.multipart import parse_options_header

    kind, params = parse_options_header(content_type or "")
    kind = kind.decode("latin-1").lower()
    if kind == "multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise BadRequest(400, "multipart/form-data body without a boundary parameter")
        request = _parse_multipart(body, boundary, max_images)
    elif kind == "application/json":
        request = _parse_json(body, max_images)
    else:
        shown = kind or "none"
        raise BadRequest(415, f"Content-Type: expected multipart/form-data or application/json, got {shown}")
    if not request.images:
        raise BadRequest(400, 'no image in the request: send a file part (multipart) or "images": [base64] (JSON)')
    return request


def _parse_multipart(body: bytes, boundary: bytes, max_images: int) -> PredictRequest:
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    result = PredictRequest()
    state: dict = {}

    def on_part_begin():
        state.update(headers={}, data=[], field=b"", value=b"")

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_part_data(data, start, end):
        state["data"].append(data[start:end])

    def on_part_end():
        disposition, params = parse_options_header(state["headers"].get("content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        data = b"".join(state["data"])
        if b"filename" in params:
            if len(result.images) >= max_images:
                raise BadRequest(413, f"more than {max_images} images in one request")
            filename = params[b"filename"].decode("utf-8", "replace") or f"image-{len(result.images) + 1}"
            result.images.append(Upload(filename, data))
        elif name:
            if len(data) > 1000:
                raise BadRequest(400, f"form field {name!r}: value too long")
            result.options[name] = data.decode("utf-8", "replace")

    callbacks = dict(
        on_part_begin=on_part_begin,
        on_header_field=on_header_field,
        on_header_value=on_header_value,
        on_header_end=on_header_end,
        on_part_data=on_part_data,
        on_part_end=on_part_end,
    )
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequest(400, f"malformed multipart body ({' '.join(str(exc).split())})") from None
    return result


def _parse_json(body: bytes, max_images: int) -> PredictRequest:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BadRequest(400, 'JSON body: expected an object like {"images": ["<base64>"]}')
    images = data.get("images", data.get("image"))
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not all(isinstance(item, str) for item in images):
        raise BadRequest(400, 'JSON body: "images" must be a list of base64 strings')
    if len(images) > max_images:
        raise BadRequest(413, f"more than {max_images} images in one request")
    names = data.get("names")
    if names is not None and (not isinstance(names, list) or len(names) != len(images)):
        raise BadRequest(400, 'JSON body: "names" must be a list with one name per image')
    result = PredictRequest()
    for i, text in enumerate(images):
        name = str(names[i]) if names else f"image-{i + 1}"
        if text.startswith("data:"):  # a data URL, as a browser's canvas gives
            text = text.partition(",")[2]
        try:
            payload = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(400, f"{name}: not valid base64") from None
        result.images.append(Upload(name, payload))
    for key in ("top_k", "gradcam", "invert"):
        if key in data:
            value = data[key]
            result.options[key] = json.dumps(value) if isinstance(value, bool) else str(value)
    return result


def option_int(options: dict, key: str, default: int, low: int, high: int) -> int:
    text = options.get(key)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(422, f"{key}: expected an integer from {low} to {high}, got {text!r}") from None
    if not low <= value <= high:
        raise BadRequest(422, f"{key}: expected an integer from {low} to {high}, got {value}")
    return value


def option_bool(options: dict, key: str, default: bool = False) -> bool:
    text = options.get(key)
    if text is None or text == "":
        return default
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise BadRequest(422, f"{key}: expected true or false, got {text!r}")
