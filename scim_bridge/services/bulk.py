"""SCIM Bulk (RFC 7644 §3.7): operations run in order, each in its own savepoint, through the
same service operations as single requests, so revocations still pass the choke point."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from ..errors import BridgeError, InvalidSyntax, InvalidValue, PayloadTooLarge
from ..models import Group, User
from ..scim.schema import BULK_REQUEST, BULK_RESPONSE, ERROR
from . import Actor, groups, users

_BULK_ID = re.compile(r"bulkId:([A-Za-z0-9_.\-~]+)")
_PATH = re.compile(r"^/(Users|Groups)(?:/([^/]+))?$")


class UnresolvedBulkId(InvalidValue):
    status = 409
    scim_type = "invalidValue"


def process(
    session: Session,
    actor: Actor,
    body: Any,
    *,
    base_url: str,
    max_operations: int,
    render_user: Callable[[User], dict[str, Any]],
    render_group: Callable[[Group], dict[str, Any]],
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidSyntax("a BulkRequest must be a JSON object")
    lowered = {str(k).lower(): v for k, v in body.items()}
    schemas = lowered.get("schemas")
    if schemas is not None and BULK_REQUEST not in (schemas or []):
        raise InvalidSyntax(f"a BulkRequest must list the schema '{BULK_REQUEST}'")
    operations = lowered.get("operations")
    if not isinstance(operations, list):
        raise InvalidSyntax("a BulkRequest needs an 'Operations' array")
    if len(operations) > max_operations:
        raise PayloadTooLarge(
            f"{len(operations)} operations exceed maxOperations ({max_operations})"
        )
    fail_on_errors = lowered.get("failonerrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool) or not isinstance(fail_on_errors, int)
    ):
        raise InvalidValue("'failOnErrors' must be an integer")

    resolved: dict[str, str] = {}
    results: list[tuple[int, dict[str, Any]]] = []
    errors = 0
    pending = list(enumerate(operations))
    while pending:
        deferred = []
        for index, operation in pending:
            if fail_on_errors and errors >= fail_on_errors:
                break
            unresolved = _unresolved_ids(operation, resolved)
            if unresolved and _defined_later(unresolved, pending, index):
                deferred.append((index, operation))
                continue
            outcome = _run_one(
                session, actor, operation, resolved, base_url, render_user, render_group
            )
            if int(outcome["status"]) >= 400:
                errors += 1
            results.append((index, outcome))
        if len(deferred) == len(pending):
            dangling = UnresolvedBulkId("the operation refers to a bulkId no operation defines")
            results += [(index, _error_result(op, dangling)) for index, op in deferred]
            break
        pending = deferred
        if fail_on_errors and errors >= fail_on_errors:
            break
    ordered = [outcome for _, outcome in sorted(results, key=lambda pair: pair[0])]
    return {"schemas": [BULK_RESPONSE], "Operations": ordered}


def _unresolved_ids(operation: Any, resolved: dict[str, str]) -> set[str]:
    text = json.dumps(operation) if isinstance(operation, dict) else ""
    found = set(_BULK_ID.findall(text))
    own = operation.get("bulkId") if isinstance(operation, dict) else None
    return {ref for ref in found if ref not in resolved and ref != own}


def _defined_later(refs: set[str], pending: list[tuple[int, Any]], index: int) -> bool:
    defined = {op.get("bulkId") for i, op in pending if i != index and isinstance(op, dict)}
    return bool(refs & defined)


def _substitute(value: Any, resolved: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _BULK_ID.sub(lambda m: resolved.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute(item, resolved) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, resolved) for key, item in value.items()}
    return value


def _run_one(
    session: Session,
    actor: Actor,
    operation: Any,
    resolved: dict[str, str],
    base_url: str,
    render_user: Callable[[User], dict[str, Any]],
    render_group: Callable[[Group], dict[str, Any]],
) -> dict[str, Any]:
    try:
        if not isinstance(operation, dict):
            raise InvalidSyntax("each bulk operation must be a JSON object")
        fields = {str(k).lower(): v for k, v in operation.items()}
        method = str(fields.get("method") or "").upper()
        path = _substitute(str(fields.get("path") or ""), resolved)
        data = _substitute(fields.get("data"), resolved)
        bulk_id = fields.get("bulkid")
        match = _PATH.match(path)
        if method not in {"POST", "PUT", "PATCH", "DELETE"}:
            raise InvalidSyntax(f"unsupported bulk method '{fields.get('method')}'")
        if match is None:
            raise InvalidValue(f"unsupported bulk path '{path}'")
        if method == "POST" and (match.group(2) or not bulk_id):
            raise InvalidValue("a bulk POST needs a bulkId and a path of /Users or /Groups")
        if method != "POST" and not match.group(2):
            raise InvalidValue(f"a bulk {method} needs a path with the resource id")
        if "bulkId:" in path:
            raise UnresolvedBulkId(f"unresolved bulkId in path '{path}'")
        version = fields.get("version")
        with session.begin_nested():
            resource = _dispatch(
                session, actor, method, match.group(1), match.group(2), data, version
            )
    except BridgeError as error:
        return _error_result(operation, error)
    result: dict[str, Any] = {
        "method": method,
        "status": {"POST": "201", "DELETE": "204"}.get(method, "200"),
    }
    if bulk_id:
        result["bulkId"] = bulk_id
    if resource is not None:
        if method == "POST" and bulk_id:
            resolved[str(bulk_id)] = resource.id
        kind = "Users" if isinstance(resource, User) else "Groups"
        result["location"] = f"{base_url}/{kind}/{resource.id}"
        result["version"] = f'W/"{resource.version}"'
        if method in {"POST", "PUT", "PATCH"}:
            result["response"] = (
                render_user(resource) if isinstance(resource, User) else render_group(resource)
            )
    elif match and match.group(2):
        result["location"] = f"{base_url}/{match.group(1)}/{match.group(2)}"
    return result


_CREATE: dict[str, Callable[..., User | Group]] = {
    "Users": users.create_user,
    "Groups": groups.create_group,
}
_CHANGE: dict[tuple[str, str], Callable[..., User | Group]] = {
    ("Users", "PUT"): users.replace_user,
    ("Users", "PATCH"): users.patch_user,
    ("Groups", "PUT"): groups.replace_group,
    ("Groups", "PATCH"): groups.patch_group,
}
_DELETE: dict[str, Callable[..., None]] = {
    "Users": users.delete_user,
    "Groups": groups.delete_group,
}


def _dispatch(
    session: Session,
    actor: Actor,
    method: str,
    kind: str,
    resource_id: str | None,
    data: Any,
    version: Any,
) -> User | Group | None:
    if method == "POST":
        return _CREATE[kind](session, actor, data)
    assert resource_id is not None
    if_match = version if isinstance(version, str) else None
    if method == "DELETE":
        _DELETE[kind](session, actor, resource_id, if_match)
        return None
    return _CHANGE[(kind, method)](session, actor, resource_id, data, if_match)


def _error_result(operation: Any, error: BridgeError) -> dict[str, Any]:
    fields = (
        {str(k).lower(): v for k, v in operation.items()} if isinstance(operation, dict) else {}
    )
    response: dict[str, Any] = {
        "schemas": [ERROR],
        "status": str(error.status),
        "detail": error.detail,
    }
    if error.scim_type:
        response["scimType"] = error.scim_type
    result: dict[str, Any] = {
        "method": str(fields.get("method") or ""),
        "status": str(error.status),
        "response": response,
    }
    if fields.get("bulkid"):
        result["bulkId"] = fields["bulkid"]
    return result
