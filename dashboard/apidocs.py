"""An API reference page drawn from the app's own OpenAPI schema, with no CDN (FastAPI's /docs loads
Swagger UI from one, which a wall screen on an isolated network cannot reach)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from dashboard.templating import render

router = APIRouter(include_in_schema=False)
_METHODS = ("get", "post", "patch", "put", "delete")


@dataclass
class Row:
    name: str
    type: str
    description: str
    required: bool


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    auth: bool
    params: list[Row] = field(default_factory=list)
    body: str | None = None
    returns: str | None = None
    answers: list[tuple[str, str]] = field(default_factory=list)  # every documented status code, its meaning


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_name(schema: dict[str, Any]) -> str:
    """A short readable type: ``int``, ``list[Worker]``, ``float | null``, ``online | offline``."""
    if "$ref" in schema:
        return _ref_name(schema["$ref"])
    if "anyOf" in schema:
        return " | ".join(type_name(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if schema.get("type") == "array":
        return f"list[{type_name(schema.get('items', {}))}]"
    return {"integer": "int", "number": "float", "string": "str", "boolean": "bool"}.get(schema.get("type", ""),
                                                                                          schema.get("type", "any"))


def constraints(schema: dict[str, Any]) -> str:
    """What a value must match beyond its type: a range, a pattern, a file; empty when nothing.

    >>> constraints({"minimum": 1, "maximum": 500}), constraints({"exclusiveMinimum": 0, "maximum": 9})
    ('1..500', '> 0, <= 9')
    >>> constraints({"anyOf": [{"type": "string", "pattern": "^[a-z]+$"}, {"type": "null"}]})
    '^[a-z]+$'
    """
    if "anyOf" in schema:
        return ", ".join(filter(None, (constraints(s) for s in schema["anyOf"])))
    parts = []
    if "minimum" in schema and "maximum" in schema:
        parts.append(f"{schema['minimum']}..{schema['maximum']}")
    else:
        parts += [f"{sign} {schema[key]}" for key, sign in (("exclusiveMinimum", ">"), ("minimum", ">="),
                                                            ("exclusiveMaximum", "<"), ("maximum", "<="))
                  if key in schema]
    if "pattern" in schema:
        parts.append(schema["pattern"])
    if schema.get("format") == "binary":
        parts.append("a file")
    return ", ".join(parts)


def _row(name: str, where: str, schema: dict[str, Any], description: str, required: bool) -> Row:
    rule = constraints(schema)
    return Row(name, f"{where}: {type_name(schema)}" + (f" ({rule})" if rule else ""), description, required)


def _body_schema(content: dict[str, Any]) -> str | None:
    schema = content.get("application/json", {}).get("schema")
    return type_name(schema) if schema else None


def _form_fields(content: dict[str, Any]) -> list[Row]:
    """The fields of a multipart form body, as parameter rows (the form's schema is inline, not a named schema)."""
    form = content.get("multipart/form-data", {}).get("schema", {})
    return [_row(name, "form", s, s.get("description", ""), name in form.get("required", []))
            for name, s in form.get("properties", {}).items()]


def reference(spec: dict[str, Any]) -> tuple[list[Operation], dict[str, list[Row]]]:
    """The operations and, per schema, its fields with their descriptions."""
    ops = []
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            if method not in item:
                continue
            op = item[method]
            responses: dict[str, Any] = op.get("responses", {})
            ok: dict[str, Any] = next((r for code, r in responses.items() if code.startswith("2")), {})
            body = op.get("requestBody", {}).get("content", {})
            ops.append(Operation(
                method=method.upper(), path=path, summary=op.get("summary", ""), auth=bool(op.get("security")),
                params=[_row(p["name"], p["in"], p.get("schema", {}), p.get("description", ""),
                             p.get("required", False)) for p in op.get("parameters", [])] + _form_fields(body),
                body=_body_schema(body),
                returns=_body_schema(ok.get("content", {})) or next(iter(ok.get("content", {})), None),
                answers=[(code, r.get("description", "")) for code, r in sorted(responses.items())],
            ))
    schemas = {
        name: [Row(prop, type_name(s), s.get("description", ""), prop in schema.get("required", []))
               for prop, s in schema.get("properties", {}).items()]
        for name, schema in spec.get("components", {}).get("schemas", {}).items()
        if name not in {"HTTPValidationError", "ValidationError"}
    }
    return ops, schemas


@router.get("/api-docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    ops, schemas = reference(request.app.openapi())
    return render(request, "apidocs.html", "API", "API", operations=ops, schemas=schemas)
