"""SCIM Bulk (RFC 7644 §3.7): each operation runs in its own savepoint, through the same service
operations as single requests, so revocations still pass the choke point.

Without ``failOnErrors`` every operation stands alone: one that fails, in validation or in the
database, is rolled back to its savepoint and reported in its own result; the others commit.
bulkId references are collected once, operations run in dependency order (Kahn's algorithm,
request order among the ready ones), and the response lists results in request order.
"""

from __future__ import annotations

import heapq
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session

from ..errors import BridgeError, Conflict, InvalidSyntax, InvalidValue, PayloadTooLarge
from ..models import Group, User
from ..scim.schema import BULK_REQUEST, BULK_RESPONSE, ERROR
from ..storable import unstorable
from . import Actor, groups, users

log = logging.getLogger(__name__)

_BULK_ID = re.compile(r"bulkId:([A-Za-z0-9_.\-~]+)")
_PATH = re.compile(r"^/(Users|Groups)(?:/([^/]+))?$")
#: How many bulkIds a cycle message names before it says "and N more".
_NAMED_IN_CYCLE = 5


@dataclass
class _Operation:
    """One entry of ``Operations``, read once: its fields, the bulkId it defines, its references."""

    index: int
    raw: Any
    fields: dict[str, Any] = field(default_factory=dict)
    defines: str | None = None
    refs: list[str] = field(default_factory=list)
    #: Known before anything runs: malformed, or a bulkId graph it cannot be part of.
    error: BridgeError | None = None


def process(
    db: Session,
    actor: Actor,
    body: Any,
    *,
    base_url: str,
    max_operations: int,
    render_user: Callable[[Any, bool], dict[str, Any]],
    render_group: Callable[[Group], dict[str, Any]],
) -> dict[str, Any]:
    """Run a BulkRequest; ``render_user(user, new)`` renders a user (``new``: no groups yet)."""
    if not isinstance(body, dict):
        raise InvalidSyntax("a BulkRequest must be a JSON object")
    lowered = {str(k).lower(): v for k, v in body.items()}
    schemas = lowered.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or BULK_REQUEST not in schemas):
        raise InvalidSyntax(f"a BulkRequest must list the schema '{BULK_REQUEST}'")
    raw_operations = lowered.get("operations")
    if not isinstance(raw_operations, list):
        raise InvalidSyntax("a BulkRequest needs an 'Operations' array")
    if len(raw_operations) > max_operations:
        raise PayloadTooLarge(
            f"{len(raw_operations)} operations exceed maxOperations ({max_operations})"
        )
    fail_on_errors = _fail_on_errors(lowered)

    operations = [_read(index, raw) for index, raw in enumerate(raw_operations)]
    dependents = _link(operations)
    resolved: dict[str, str] = {}
    results: dict[int, dict[str, Any]] = {}
    errors = 0
    for operation, forced in _in_dependency_order(operations, dependents):
        if fail_on_errors is not None and errors >= fail_on_errors:
            break  # RFC 7644 §3.7.3: operations not run are not in the response.
        error = operation.error or forced or _unresolved(operation, resolved)
        if error is not None:
            outcome = _error_result(operation, error)
        else:
            outcome = _run_one(
                db, actor, operation, resolved, base_url, render_user, render_group
            )
        if int(outcome["status"]) >= 400:
            errors += 1
        results[operation.index] = outcome
    return {"schemas": [BULK_RESPONSE], "Operations": [results[i] for i in sorted(results)]}


def _fail_on_errors(lowered: dict[str, Any]) -> int | None:
    """RFC 7644 §3.7.3: ``failOnErrors`` is an integer, and only a positive one means anything."""
    value = lowered.get("failonerrors")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValue(f"'failOnErrors' must be a positive integer, not {value!r}")
    return value


# --- The bulkId graph -------------------------------------------------------------------------


def _read(index: int, raw: Any) -> _Operation:
    operation = _Operation(index, raw)
    if not isinstance(raw, dict):
        operation.error = InvalidSyntax("each bulk operation must be a JSON object")
        return operation
    operation.fields = {str(k).lower(): v for k, v in raw.items()}
    refs: dict[str, None] = {}
    _collect_refs([operation.fields.get("path"), operation.fields.get("data")], refs)
    operation.refs = list(refs)
    bulk_id = operation.fields.get("bulkid")
    if str(operation.fields.get("method") or "").upper() == "POST" and isinstance(bulk_id, str):
        operation.defines = bulk_id
    # Checked here, not by the request's body check, so bad text fails only its operation.
    problem = unstorable(raw)
    if problem is not None:
        operation.error = InvalidSyntax(f"in this operation, {problem}")
    return operation


def _collect_refs(value: Any, refs: dict[str, None]) -> None:
    """Collect the bulkIds that ``value`` refers to into ``refs``, in order of appearance."""
    if isinstance(value, str):
        for ref in _BULK_ID.findall(value):
            refs[ref] = None
    elif isinstance(value, dict):
        _collect_refs([*value.keys(), *value.values()], refs)
    elif isinstance(value, list):
        for item in value:
            _collect_refs(item, refs)


def _link(operations: list[_Operation]) -> dict[int, list[int]]:
    """Give each operation its static graph error, and return producer -> dependents edges."""
    definers: dict[str, int] = {}
    duplicated: set[str] = set()
    for operation in operations:
        if operation.defines is not None:
            if operation.defines in definers:
                duplicated.add(operation.defines)
            definers.setdefault(operation.defines, operation.index)
    dependents: dict[int, list[int]] = {}
    for operation in operations:
        if operation.error is None:
            operation.error = _graph_error(operation, definers, duplicated)
        if operation.error is not None:
            continue
        for ref in operation.refs:
            dependents.setdefault(definers[ref], []).append(operation.index)
    return dependents


def _graph_error(
    operation: _Operation, definers: dict[str, int], duplicated: set[str]
) -> BridgeError | None:
    if operation.defines in duplicated:
        return InvalidValue(f"bulkId '{operation.defines}' is used by more than one operation")
    if operation.defines is not None and operation.defines in operation.refs:
        return InvalidValue(f"operation refers to its own bulkId '{operation.defines}'")
    for ref in operation.refs:
        if ref not in definers:
            return InvalidValue(f"bulkId '{ref}' is not defined by any operation")
        if ref in duplicated:
            return InvalidValue(
                f"bulkId '{ref}' is used by more than one operation, so the reference is ambiguous"
            )
    return None


def _in_dependency_order(
    operations: list[_Operation], dependents: dict[int, list[int]]
) -> Any:
    """Yield (operation, forced error): Kahn's algorithm, lowest request index first among the
    ready ones. When only cycles are left, their members fail (RFC 7644 §3.7.1 lets a service
    provider give up on circular references) and what depends on them runs next."""
    waiting = [0] * len(operations)
    for targets in dependents.values():
        for target in targets:
            waiting[target] += 1
    ready = [op.index for op in operations if waiting[op.index] == 0]
    heapq.heapify(ready)
    forced: dict[int, BridgeError] = {}
    done = 0
    while done < len(operations):
        if not ready:
            remaining = {op.index for op in operations if waiting[op.index] > 0}
            forced = _cycle_errors(operations, dependents, remaining)
            for index in forced:
                waiting[index] = 0
                heapq.heappush(ready, index)
        index = heapq.heappop(ready)
        done += 1
        yield operations[index], forced.pop(index, None)
        for target in dependents.get(index, ()):
            if waiting[target] > 0:
                waiting[target] -= 1
                if waiting[target] == 0:
                    heapq.heappush(ready, target)


def _cycle_errors(
    operations: list[_Operation], dependents: dict[int, list[int]], remaining: set[int]
) -> dict[int, BridgeError]:
    """A 400 for every member of a cycle among ``remaining`` (Tarjan's strongly connected
    components, iteratively); operations that only depend on a cycle are left to wait."""
    order: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    errors: dict[int, BridgeError] = {}
    for root in sorted(remaining):
        if root in order:
            continue
        work = [(root, iter(dependents.get(root, ())))]
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in remaining:
                    continue
                if target not in order:
                    order[target] = low[target] = len(order)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(dependents.get(target, ()))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], order[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == order[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        error = _cycle_error([operations[i] for i in sorted(component)])
                        errors.update(dict.fromkeys(component, error))
    return errors


def _cycle_error(members: list[_Operation]) -> BridgeError:
    names = [f"'{op.defines}'" for op in members[:_NAMED_IN_CYCLE]]
    if len(members) > _NAMED_IN_CYCLE:
        listed = f"{', '.join(names)} and {len(members) - _NAMED_IN_CYCLE} more"
    else:
        listed = f"{', '.join(names[:-1])} and {names[-1]}"
    return InvalidValue(f"bulkIds {listed} refer to each other (a cycle)")


def _unresolved(operation: _Operation, resolved: dict[str, str]) -> BridgeError | None:
    for ref in operation.refs:
        if ref not in resolved:
            return InvalidValue(f"bulkId '{ref}' was not created: its operation failed")
    return None


def _substitute(value: Any, resolved: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _BULK_ID.sub(lambda m: resolved.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute(item, resolved) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, resolved) for key, item in value.items()}
    return value


# --- Running one operation --------------------------------------------------------------------


def _run_one(
    db: Session,
    actor: Actor,
    operation: _Operation,
    resolved: dict[str, str],
    base_url: str,
    render_user: Callable[[Any, bool], dict[str, Any]],
    render_group: Callable[[Group], dict[str, Any]],
) -> dict[str, Any]:
    fields = operation.fields
    method = str(fields.get("method") or "").upper()
    path = str(fields.get("path") or "")
    data = fields.get("data")
    if operation.refs:
        path, data = _substitute(path, resolved), _substitute(data, resolved)
    bulk_id = fields.get("bulkid")
    try:
        match = _PATH.match(path)
        if method not in {"POST", "PUT", "PATCH", "DELETE"}:
            raise InvalidSyntax(f"unsupported bulk method '{fields.get('method')}'")
        if match is None:
            raise InvalidValue(f"unsupported bulk path '{path}'")
        if method == "POST" and (match.group(2) or not isinstance(bulk_id, str) or not bulk_id):
            raise InvalidValue("a bulk POST needs a bulkId and a path of /Users or /Groups")
        if method != "POST" and not match.group(2):
            raise InvalidValue(f"a bulk {method} needs a path with the resource id")
        with db.begin_nested():
            resource = _dispatch(
                db, actor, method, match.group(1), match.group(2), data, fields.get("version")
            )
    except BridgeError as error:
        return _error_result(operation, error)
    except OperationalError:
        raise  # the database is down or busy: the whole request is a 503, retried as one
    except (StatementError, UnicodeError) as error:
        # The savepoint is rolled back; the request's transaction goes on without this one.
        return _error_result(operation, _database_refusal(operation, error))
    result: dict[str, Any] = {
        "method": method,
        "status": {"POST": "201", "DELETE": "204"}.get(method, "200"),
    }
    if bulk_id:
        result["bulkId"] = bulk_id
    if resource is not None:
        if method == "POST":
            resolved[str(bulk_id)] = resource.id
        kind = match.group(1)
        result["location"] = f"{base_url}/{kind}/{resource.id}"
        result["version"] = f'W/"{resource.version}"'
        result["response"] = (
            render_user(resource, method == "POST") if kind == "Users" else render_group(resource)
        )
    elif match.group(2):
        result["location"] = f"{base_url}/{match.group(1)}/{match.group(2)}"
    return result


def _database_refusal(operation: _Operation, error: Exception) -> BridgeError:
    """The database (or its driver) refused what the checks before it let through."""
    cause = getattr(error, "orig", None) or error
    log.warning("bulk operation %d refused by the database: %s", operation.index,
                type(cause).__name__)
    if isinstance(error, UnicodeError):
        return InvalidValue("the operation holds text that cannot be stored "
                            "(a lone surrogate or another character with no UTF-8 form)")
    if isinstance(error, IntegrityError):
        if getattr(cause, "sqlstate", None) == "23505" or "UNIQUE constraint" in str(cause):
            return Conflict("the operation clashes with a resource that already exists")
        return InvalidValue("the operation refers to something that does not exist")
    return InvalidValue("the database cannot store a value of this operation "
                        "(too long, or not valid for its attribute)")


# Creating a user returns a snapshot of the inserted row (see users.create_user).
_CREATE: dict[str, Callable[..., Any]] = {
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
    db: Session,
    actor: Actor,
    method: str,
    kind: str,
    resource_id: str | None,
    data: Any,
    version: Any,
) -> Any:
    if method == "POST":
        return _CREATE[kind](db, actor, data)
    assert resource_id is not None
    if_match = version if isinstance(version, str) else None
    if method == "DELETE":
        _DELETE[kind](db, actor, resource_id, if_match)
        return None
    return _CHANGE[(kind, method)](db, actor, resource_id, data, if_match)


def _error_result(operation: _Operation, error: BridgeError) -> dict[str, Any]:
    response: dict[str, Any] = {
        "schemas": [ERROR],
        "status": str(error.status),
        "detail": error.detail,
    }
    if error.scim_type:
        response["scimType"] = error.scim_type
    result: dict[str, Any] = {
        "method": str(operation.fields.get("method") or ""),
        "status": str(error.status),
        "response": response,
    }
    if operation.fields.get("bulkid"):
        result["bulkId"] = operation.fields["bulkid"]
    return result
