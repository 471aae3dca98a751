#!/usr/bin/env python3
"""Local EC2 emulator for ami-publisher: moto's server plus the AWS rules it lacks.

    .venv/bin/python tests/emulator/server.py --port 0

binds 127.0.0.1 (port 0 picks a free port) and, once it accepts requests,
prints exactly one line ``EMULATOR_READY http://127.0.0.1:<port>`` on stdout.
On a start failure it says why on stderr and exits non-zero.

EC2 (and any other moto service) is answered at ``/``; the control API is
under ``/_emulator/`` on the same port. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
import time
import uuid
from io import BytesIO
from typing import Any, Callable
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

DEFAULT_COPY_DELAY_SECONDS = 30.0

# HTTP status EC2 uses for server-side error codes; everything else is a
# client error (400). RequestLimitExceeded is answered with 503 by EC2, which
# is what the SDKs' retry classifiers key on (together with the code).
SERVER_ERROR_STATUS = {
    "RequestLimitExceeded": 503,
    "Unavailable": 503,
    "ServiceUnavailable": 503,
    "InsufficientInstanceCapacity": 500,
    "InternalError": 500,
    "InternalFailure": 500,
}
# DynamoDB (Developer Guide, "Error handling with DynamoDB", "Error
# messages and codes": the exceptions grouped by HTTP status code): the 5xx
# ones are InternalServerError (500) and ServiceUnavailable (503); every
# other, ProvisionedThroughputExceededException, ThrottlingException and
# RequestLimitExceeded included, is 400. Its error document is the JSON 1.0
# protocol's, the type qualified by the service's namespace:
# {"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
#  "message": ...}, Content-Type application/x-amz-json-1.0.
DYNAMODB_ERROR_STATUS = {"InternalServerError": 500, "ServiceUnavailable": 503}
DYNAMODB_ERROR_NAMESPACE = "com.amazonaws.dynamodb.v20120810#"
DEFAULT_FAULT_MESSAGES = {
    "RequestLimitExceeded": "Request limit exceeded.",
    "InternalError": "An internal error has occurred",
    "ResourceLimitExceeded": "You have exceeded an Amazon EC2 resource limit.",
}

CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")
DEFAULT_ACCOUNT = "123456789012"
# Services whose requests use the query protocol (errors as EC2 XML); the
# others this emulator serves use the JSON protocol (Service Quotas and
# DynamoDB, the action named by X-Amz-Target) or REST-JSON (the EBS direct APIs: the action is the HTTP
# method and path, and errors carry their type in x-amzn-ErrorType).
QUERY_SERVICES = {"ec2"}
REST_JSON_SERVICES = {"ebs"}
# EBS direct APIs' throttling error: RequestThrottledException ("The number
# of API requests has exceeded the maximum allowed API request throttling
# limit for the snapshot"), HTTP 400 in the EBS model, Reason
# ACCOUNT_THROTTLED.
EBS_THROTTLED = {"error_code": "RequestThrottledException", "reason": "ACCOUNT_THROTTLED",
                 "message": "The number of API requests has exceeded the maximum allowed API request "
                            "throttling limit."}

StartResponse = Callable[..., Any]


class ControlError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _json_response(start_response: StartResponse, status: int, body: Any) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}
    start_response(
        f"{status} {reason.get(status, 'Status')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def json_error_body(code: str, message: str) -> bytes:
    # The AWS JSON protocol (1.1) error document; the SDKs read __type.
    return json.dumps({"__type": code, "message": message}).encode()


_REST_ROUTES: dict[str, list[tuple[str, Any, str, int]]] = {}


def rest_route(service: str, method: str, path: str) -> tuple[str | None, dict[str, str]]:
    """The action of a REST request, and its URI parameters, from the
    service's own API model (botocore's): its operations' HTTP method and
    requestUri. None when no operation matches."""
    routes = _REST_ROUTES.get(service)
    if routes is None:
        import botocore.session

        model = botocore.session.get_session().get_service_model(service)
        routes = []
        for name in model.operation_names:
            http = model.operation_model(name).http
            uri = http["requestUri"].split("?", 1)[0]
            pattern = re.sub(r"\\{(\w+)\\\+\\}", r"(?P<\1>.+)", re.escape(uri))
            pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", pattern)
            # Literal segments first: /snapshots/completion/{id} before
            # /snapshots/{id}/blocks.
            literal = len(re.sub(r"\{[^}]*\}", "", uri))
            routes.append((http["method"], re.compile(f"^{pattern}$"), name, literal))
        routes.sort(key=lambda r: -r[3])
        _REST_ROUTES[service] = routes
    for verb, regex, name, _ in routes:
        m = regex.match(path)
        if verb == method and m:
            return name, m.groupdict()
    return None, {}


def rest_error_status(service: str, code: str) -> int | None:
    """The HTTP status the service's model gives that error, if it has it."""
    import botocore.session

    try:
        shape = botocore.session.get_session().get_service_model(service).shape_for(code)
    except Exception:
        return None
    return (shape.metadata.get("error") or {}).get("httpStatusCode")


def ec2_error_body(code: str, message: str) -> bytes:
    # The EC2 (query protocol) error document, as EC2 returns it.
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"</Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()


def _read_body(environ: dict[str, Any]) -> bytes:
    """The whole request body, with or without Content-Length.

    Without one (Transfer-Encoding: chunked), werkzeug's server de-chunks the
    input and marks it terminated, so reading to the end is safe.
    """
    stream = environ["wsgi.input"]
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        return stream.read(length)
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    return b""


def _number(body: dict[str, Any], key: str, *, integer: bool = False) -> float | int | None:
    if key not in body:
        return None
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ControlError(400, f"{key} must be a non-negative number")
    if integer:
        if int(value) != value:
            raise ControlError(400, f"{key} must be an integer")
        return int(value)
    return value


def rest_call_details(uri_params: dict[str, str]) -> dict[str, Any]:
    """What the call log keeps of an EBS direct API call: the snapshot and,
    for a block, its index."""
    details: dict[str, Any] = {}
    if uri_params.get("snapshotId"):
        details["snapshot_id"] = uri_params["snapshotId"]
    if uri_params.get("blockIndex", "").isdigit():
        details["block_index"] = int(uri_params["blockIndex"])
    return details


def call_details(params: dict[str, list[str]]) -> dict[str, str]:
    """What the call log keeps of a request beyond its action: the image it
    names, and for a launch permission change whether it adds or removes
    the group "all" (so that a test can read the order of publishing and
    retiring from the log)."""
    details = {}
    image_id = (params.get("ImageId") or [None])[0]
    if image_id:
        details["image_id"] = image_id
    for op in ("Add", "Remove"):
        # Query form of LaunchPermission.Add.1.Group=all
        if any(k.startswith(f"LaunchPermission.{op}.") and v == ["all"] for k, v in params.items()):
            details["launch_permission"] = f"{op.lower()} all"
    return details


class EmulatorApp:
    """WSGI app: control API under /_emulator/, everything else to moto."""

    def __init__(self, rules: Any, moto_app: Any):
        self.rules = rules
        self.state = rules.STATE
        self.moto_app = moto_app

    # -- WSGI entry ------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator/") or path == "/_emulator":
            try:
                return self.control(environ, start_response)
            except ControlError as e:
                return _json_response(start_response, e.status, {"error": e.message})
            except Exception as e:  # pragma: no cover - surfaced to the caller
                logging.exception("control API failure")
                return _json_response(start_response, 500, {"error": f"{type(e).__name__}: {e}"})
        return self.aws(environ, start_response)

    # -- AWS API -------------------------------------------------------
    def aws(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        from werkzeug.wrappers import Response

        body = _read_body(environ)
        environ["wsgi.input"] = BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))

        region, service = "us-east-1", None
        m = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if m:
            region, service = m.group(1), m.group(2)
        account = environ.get("HTTP_X_MOTO_ACCOUNT_ID") or DEFAULT_ACCOUNT
        params: dict[str, list[str]] = {}
        if body and b"Action=" in body:
            params = parse_qs(body.decode("utf-8", "replace"))
        if not params.get("Action"):
            params = parse_qs(environ.get("QUERY_STRING", ""))
        action = (params.get("Action") or [None])[0]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if action is None and "." in target:
            # JSON protocol: X-Amz-Target: ServiceQuotasV20190624.GetServiceQuota
            action = target.rsplit(".", 1)[1]
        uri_params: dict[str, str] = {}
        if action is None and service in REST_JSON_SERVICES:
            # REST: the action is the operation whose method and path match.
            action, uri_params = rest_route(service, environ.get("REQUEST_METHOD", "GET").upper(),
                                            environ.get("PATH_INFO", ""))

        fault = None
        throttled = False
        with self.state.lock:
            if service == "dynamodb":
                # The function's ledger table, as template.yaml defines it.
                self.rules.ledger.ensure_table(region, account)
            if action and service in ("ec2", "ebs"):
                # EC2 and EBS direct API request throttling (off unless
                # POST /_emulator/throttling).
                throttled = not self.state.throttle.take(account, region, action, params, service=service)
            if action and service:
                call = {"action": action, "region": region, "service": service}
                call.update(rest_call_details(uri_params) if service in REST_JSON_SERVICES
                            else call_details(params))
                if throttled:
                    call["throttled"] = True
                self.state.calls.append(call)
            latency = float(self.state.config["latency_ms"]) / 1000.0
            if action and not throttled:
                fault = self._take_fault(action, region)
            hold = self._take_hold(action, region) if action else None
        if hold is not None:
            # POST /_emulator/holds: this call waits until the test releases
            # it (two runs interleaved deterministically), at most 60 s.
            released = hold["event"].wait(60)
            with self.state.lock:
                hold["waiting"] -= 1
            if not released:
                logging.warning("held %s call released by its 60 s timeout", action)
        if latency > 0:
            time.sleep(latency)
        if throttled and service == "ebs":
            fault = EBS_THROTTLED
        elif throttled:
            # EC2 ("Request throttling"): "If you exceed an API throttling
            # limit, you get the RequestLimitExceeded error code", with HTTP
            # 503 as EC2 answers it.
            fault = {"error_code": "RequestLimitExceeded", "message": "Request limit exceeded."}
        if fault is not None:
            code = fault["error_code"]
            if service in REST_JSON_SERVICES:
                model_status = rest_error_status(service, code)
            elif service == "dynamodb":
                model_status = DYNAMODB_ERROR_STATUS.get(code, 400)
            else:
                model_status = None
            status = int(fault.get("http_status") or model_status or SERVER_ERROR_STATUS.get(code, 400))
            message = fault.get("message") or DEFAULT_FAULT_MESSAGES.get(code, f"Injected fault: {code}")
            if service in REST_JSON_SERVICES:
                # REST-JSON errors: the type in x-amzn-ErrorType, the body a
                # JSON object with the message (and the error's Reason).
                error: dict[str, Any] = {"message": message}
                if fault.get("reason"):
                    error["Reason"] = fault["reason"]
                data = json.dumps(error).encode()
                headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
            elif service in QUERY_SERVICES or service is None:
                data = ec2_error_body(code, message)
                headers = [("Content-Type", "text/xml;charset=UTF-8")]
            elif service == "dynamodb":
                data = json_error_body(DYNAMODB_ERROR_NAMESPACE + code, message)
                headers = [("Content-Type", "application/x-amz-json-1.0")]
            else:
                data = json_error_body(code, message)
                headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
            start_response(f"{status} Error", headers + [("Content-Length", str(len(data)))])
            return [data]
        with self.state.lock:
            self.rules.tick()
            # Buffer the whole response inside the lock: moto's backends are
            # not thread-safe, and a lazily generated body would run outside.
            response = Response.from_app(self.moto_app, environ, buffered=True)
        return response(environ, start_response)

    def _take_fault(self, action: str, region: str) -> dict[str, Any] | None:
        for fault in self.state.faults:
            if fault["action"] != action or fault["remaining"] <= 0:
                continue
            if fault.get("region") and fault["region"] != region:
                continue
            fault["remaining"] -= 1
            return fault
        return None

    def _take_hold(self, action: str, region: str) -> dict[str, Any] | None:
        """The hold this call is caught by, if any (the lock is held)."""
        for hold in self.state.holds:
            if hold["action"] == action and hold["region"] in (None, region) and hold["remaining"] > 0:
                hold["remaining"] -= 1
                hold["waiting"] += 1
                hold["caught"] += 1
                return hold
        return None

    # -- control API ---------------------------------------------------
    def control(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "").rstrip("/")
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        body: dict[str, Any] = {}
        if method == "POST":
            raw = _read_body(environ)
            if raw.strip():
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError as e:
                    raise ControlError(400, f"body is not JSON: {e}")
                if not isinstance(body, dict):
                    raise ControlError(400, "body must be a JSON object")

        routes = {
            ("POST", "/_emulator/reset"): self.c_reset,
            ("POST", "/_emulator/images"): self.c_seed_image,
            ("GET", "/_emulator/images"): self.c_list_images,
            ("POST", "/_emulator/bpa"): self.c_bpa,
            ("GET", "/_emulator/bpa"): self.c_get_bpa,
            ("POST", "/_emulator/faults"): self.c_faults,
            ("GET", "/_emulator/faults"): self.c_get_faults,
            ("POST", "/_emulator/corrupt-blocks"): self.c_corrupt_blocks,
            ("GET", "/_emulator/corrupt-blocks"): self.c_get_corrupt_blocks,
            ("POST", "/_emulator/config"): self.c_config,
            ("GET", "/_emulator/config"): self.c_get_config,
            ("POST", "/_emulator/complete-copies"): self.c_complete_copies,
            ("POST", "/_emulator/copy-failures"): self.c_copy_failures,
            ("GET", "/_emulator/copy-failures"): self.c_get_copy_failures,
            ("POST", "/_emulator/fail-image"): self.c_fail_image,
            ("POST", "/_emulator/throttling"): self.c_throttling,
            ("GET", "/_emulator/throttling"): self.c_get_throttling,
            ("POST", "/_emulator/ebs-encryption-by-default"): self.c_ebs_encryption,
            ("GET", "/_emulator/ebs-encryption-by-default"): self.c_get_ebs_encryption,
            ("POST", "/_emulator/recycle-bin"): self.c_recycle,
            ("GET", "/_emulator/recycle-bin"): self.c_get_recycle_bin,
            ("POST", "/_emulator/recycle-bin/rules"): self.c_recycle_rule,
            ("GET", "/_emulator/recycle-bin/rules"): self.c_get_recycle_rules,
            ("GET", "/_emulator/calls"): self.c_calls,
            ("POST", "/_emulator/holds"): self.c_hold,
            ("GET", "/_emulator/holds"): self.c_get_holds,
            ("POST", "/_emulator/holds/release"): self.c_release_holds,
            ("POST", "/_emulator/calls/clear"): self.c_clear_calls,
            ("GET", "/_emulator/health"): lambda b, q: {"ok": True},
        }
        handler = routes.get((method, path))
        if handler is None:
            if any(p == path for (_m, p) in routes):
                raise ControlError(405, f"{method} not allowed on {path}")
            raise ControlError(404, f"no control endpoint {method} {path}")
        with self.state.lock:
            result = handler(body, query)
        return _json_response(start_response, 200, result)

    def c_reset(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        self.rules.reset_everything()
        return {"ok": True}

    def c_seed_image(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        for key in ("region", "name"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise ControlError(400, f"{key} is required (string)")
        if body.get("state", "available") not in ("available", "pending", "failed", "disabled"):
            raise ControlError(400, "state must be available, pending, failed or disabled")
        if "image_id" in body and body["image_id"] is not None:
            if not re.fullmatch(r"ami-[0-9a-f]{8,17}", str(body["image_id"])):
                raise ControlError(400, "image_id must look like ami-0123456789abcdef0")
        if "owner" in body and body["owner"] is not None and not re.fullmatch(r"\d{12}", str(body["owner"])):
            raise ControlError(400, "owner must be a 12-digit account id")
        if "tags" in body and not isinstance(body["tags"], dict):
            raise ControlError(400, "tags must be an object")
        if "snapshots" in body and not (
            isinstance(body["snapshots"], list) and all(isinstance(s, dict) for s in body["snapshots"])
        ):
            raise ControlError(400, "snapshots must be a list of objects")
        if body.get("snapshots") == []:
            raise ControlError(400, "snapshots must not be empty (an EBS-backed AMI has a root snapshot)")
        for key in ("product_codes", "shared_with"):
            if key in body and not isinstance(body[key], list):
                raise ControlError(400, f"{key} must be a list")
        for key in ("creation_date", "deprecation_time"):
            if body.get(key):
                try:
                    self.rules.parse_iso8601(body[key])
                except Exception:
                    raise ControlError(400, f"{key} is not an ISO8601 date-time")
        try:
            ami = self.rules.seed_image(body)
        except ValueError as e:
            raise ControlError(400, str(e))
        return {"image_id": ami.id}

    def c_list_images(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        self.rules.tick()
        region = query.get("region") or None
        images = [self.rules.image_view(reg, ami) for reg, ami in self.rules.all_images(region)]
        images.sort(key=lambda i: (i["region"], i["creation_date"] or "", i["image_id"]))
        return {"images": images}

    def c_bpa(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        region = body.get("region")
        state = body.get("state")
        managed_by = body.get("managed_by", "account")
        if not isinstance(region, str) or not region:
            raise ControlError(400, "region is required")
        if state not in self.rules.BPA_STATES:
            raise ControlError(400, f"state must be one of {list(self.rules.BPA_STATES)}")
        if managed_by not in self.rules.BPA_MANAGED_BY:
            raise ControlError(400, f"managed_by must be one of {list(self.rules.BPA_MANAGED_BY)}")
        entry = self.state.bpa_entry(region)
        entry["managed_by"] = managed_by
        if managed_by == "declarative-policy":
            entry["policy_state"] = state
        else:
            entry["account_state"] = state
        eff, by = self.state.bpa_effective(region)
        return {"region": region, "state": eff, "managed_by": by}

    def c_get_bpa(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        region = query.get("region") or "us-east-1"
        eff, by = self.state.bpa_effective(region)
        return {"region": region, "state": eff, "managed_by": by}

    def c_faults(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        action = body.get("action")
        code = body.get("error_code")
        if not isinstance(action, str) or not action:
            raise ControlError(400, "action is required (e.g. CopyImage)")
        if not isinstance(code, str) or not code:
            raise ControlError(400, "error_code is required (e.g. RequestLimitExceeded)")
        count = _number(body, "count", integer=True)
        if count is None:
            count = 1
        region = body.get("region")
        if region is not None and not isinstance(region, str):
            raise ControlError(400, "region must be a string")
        status = _number(body, "http_status", integer=True)
        fault = {
            "action": action,
            "region": region,
            "error_code": code,
            "count": count,
            "remaining": count,
            "message": body.get("message"),
            "http_status": status,
        }
        self.state.faults.append(fault)
        return {"ok": True, "fault": fault}

    def c_get_faults(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        return {"faults": self.state.faults}

    def c_corrupt_blocks(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        """The next `count` GetSnapshotBlock answers for that snapshot (and
        block, or any of its blocks; in that region, or any) carry data that
        no longer matches their Checksum (rules/ebs.py, ``corrupted``)."""
        snapshot_id = body.get("snapshot_id")
        if not isinstance(snapshot_id, str) or not re.fullmatch(r"snap-[0-9a-f]{8,17}", snapshot_id):
            raise ControlError(400, "snapshot_id is required (snap-...)")
        index = _number(body, "block_index", integer=True)
        count = _number(body, "count", integer=True)
        region = body.get("region")
        if region is not None and not isinstance(region, str):
            raise ControlError(400, "region must be a string")
        corruption = {"snapshot_id": snapshot_id, "block_index": index, "region": region,
                      "count": 1 if count is None else count, "remaining": 1 if count is None else count,
                      "corrupted": 0}
        self.state.block_corruptions.append(corruption)
        return {"ok": True, "corruption": corruption}

    def c_get_corrupt_blocks(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        return {"corruptions": self.state.block_corruptions}

    def c_config(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        known = {"latency_ms": False, "copy_delay_seconds": False, "public_image_quota": True,
                 "concurrent_copy_limit": True, "deregistration_cooldown_seconds": False}
        by_region = "public_image_quota_by_region"
        unknown = sorted(set(body) - set(known) - {by_region})
        if unknown:
            raise ControlError(400, f"unknown config keys: {unknown}; known: {sorted([*known, by_region])}")
        updates = {}
        for key, integer in known.items():
            value = _number(body, key, integer=integer)
            if value is not None:
                updates[key] = value
        quotas = None
        if by_region in body:
            raw = body[by_region]
            if not isinstance(raw, dict) or not all(isinstance(k, str) and k for k in raw):
                raise ControlError(400, f"{by_region} must be an object {{region: quota}}")
            quotas = {region: _number(raw, region, integer=True) for region in raw}
        self.state.config.update(updates)
        if quotas is not None:
            # Replaces the previous per-region overrides.
            self.state.public_image_quota_by_region = quotas
        return self.c_get_config(body, query)

    def c_get_config(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        return {"config": {**self.state.config,
                           "public_image_quota_by_region": dict(self.state.public_image_quota_by_region)}}

    def c_complete_copies(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        region = body.get("region") or None
        return self.rules.complete_pending(region)

    def c_copy_failures(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        region = body.get("region")
        if not isinstance(region, str) or not region:
            raise ControlError(400, "region is required (the copies' destination region)")
        count = _number(body, "count", integer=True)
        default = self.rules.DEFAULT_COPY_FAILURE
        for key in ("code", "message"):
            if key in body and not (isinstance(body[key], str) and body[key]):
                raise ControlError(400, f"{key} must be a non-empty string")
        failure = {
            "remaining": 1 if count is None else count,
            "code": body.get("code") or default["code"],
            "message": body.get("message") or default["message"],
        }
        self.state.copy_failures.setdefault(region, []).append(failure)
        return {"ok": True, "region": region, "failure": failure}

    def c_get_copy_failures(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        return {"copy_failures": self.state.copy_failures}

    def c_fail_image(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        image_id = body.get("image_id")
        if not isinstance(image_id, str) or not image_id:
            raise ControlError(400, "image_id is required")
        try:
            ami = self.rules.fail_image(image_id, body.get("code"), body.get("message"))
        except KeyError:
            raise ControlError(404, f"no image {image_id}")
        except ValueError as e:
            raise ControlError(400, str(e))
        return {"image_id": ami.id, "state": ami.state, "state_reason": ami.emu_state_reason}

    def c_throttling(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        unknown = sorted(set(body) - {"enabled", "capacity_scale", "refill_scale", "overrides"})
        if unknown:
            raise ControlError(400, f"unknown throttling keys: {unknown}")
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise ControlError(400, "enabled must be true or false")
        overrides = body.get("overrides")
        if overrides is not None:
            if not isinstance(overrides, dict):
                raise ControlError(400, "overrides must be an object {action: {capacity, refill_rate}}")
            for action, limit in overrides.items():
                if not isinstance(limit, dict) or set(limit) != {"capacity", "refill_rate"}:
                    raise ControlError(400, f"overrides.{action} must be {{\"capacity\": n, \"refill_rate\": r}}")
                _number(limit, "capacity")
                _number(limit, "refill_rate")
        self.state.throttle.configure(
            enabled=enabled,
            capacity_scale=_number(body, "capacity_scale"),
            refill_scale=_number(body, "refill_scale"),
            overrides=overrides,
        )
        return self.c_get_throttling(body, query)

    def c_get_throttling(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        t = self.state.throttle
        return {"enabled": t.enabled, "capacity_scale": t.capacity_scale, "refill_scale": t.refill_scale,
                "overrides": t.overrides, "buckets": t.view()}

    def _account_region(self, source: dict[str, Any]) -> tuple[str, str]:
        region = source.get("region")
        if not isinstance(region, str) or not region:
            raise ControlError(400, "region is required")
        account = str(source.get("account") or DEFAULT_ACCOUNT)
        if not re.fullmatch(r"\d{12}", account):
            raise ControlError(400, "account must be a 12-digit account id")
        return account, region

    def c_ebs_encryption(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        account, region = self._account_region(body)
        if not isinstance(body.get("enabled"), bool):
            raise ControlError(400, "enabled must be true or false")
        # The same flag EnableEbsEncryptionByDefault sets (moto's, per account
        # and region): one source of truth.
        self.rules.region_backend(account, region).ebs_encryption_by_default = body["enabled"]
        return self.c_get_ebs_encryption({}, {"region": region, "account": account})

    def c_get_ebs_encryption(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        account, region = self._account_region(query)
        enabled = bool(self.rules.region_backend(account, region).ebs_encryption_by_default)
        return {"account": account, "region": region, "enabled": enabled}

    def _retention_days(self, body: dict[str, Any], required: bool) -> float | None:
        days = _number(body, "retention_days")
        if days is None:
            if required:
                raise ControlError(400, "retention_days is required")
            return None
        # Recycle Bin retention rules: RetentionPeriodValue 1..3650 (days).
        if not 1 <= days <= 3650:
            raise ControlError(400, "retention_days must be between 1 and 3650")
        return float(days)

    def c_recycle(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        region = body.get("region")
        image_id = body.get("image_id")
        if not isinstance(region, str) or not region or not isinstance(image_id, str) or not image_id:
            raise ControlError(400, "region and image_id are required")
        days = self._retention_days(body, required=False) or 1.0
        owner = next((ami.owner_id for reg, ami in self.rules.all_images(region) if ami.id == image_id), None)
        if owner is None:
            raise ControlError(404, f"no image {image_id} in {region}")
        entry = self.rules.put_in_recycle_bin(owner, region, image_id, days)
        return self.rules.recycle_bin_view((owner, region, image_id), entry)

    def c_get_recycle_bin(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        self.rules.tick()
        region = query.get("region") or None
        images = [self.rules.recycle_bin_view(key, entry) for key, entry in sorted(self.state.recycle_bin.items(),
                                                                                  key=lambda kv: kv[0])
                  if region is None or key[1] == region]
        return {"images": images}

    def c_recycle_rule(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        account, region = self._account_region(body)
        if "retention_days" not in body:
            raise ControlError(400, "retention_days is required (a number of days, or null to remove the rule)")
        if body["retention_days"] is None:
            self.state.recycle_rules.pop((account, region), None)
        else:
            self.state.recycle_rules[(account, region)] = self._retention_days(body, required=True)
        return self.c_get_recycle_rules({}, {})

    def c_get_recycle_rules(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        return {"rules": [{"account": a, "region": r, "retention_days": d}
                          for (a, r), d in sorted(self.state.recycle_rules.items())]}

    def c_calls(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        # Default: EC2 calls only. ?service=servicequotas for that service's
        # calls, ?service=all for every call (with its service).
        service = query.get("service") or "ec2"
        if service == "all":
            return {"calls": [dict(c) for c in self.state.calls]}
        calls = []
        for c in self.state.calls:
            if c["service"] == service:
                calls.append({k: v for k, v in c.items() if k != "service"})
        return {"calls": calls}

    def c_clear_calls(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        self.state.calls.clear()
        return {"ok": True}

    def c_hold(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        """The next `count` calls of `action` (in `region`, or any) wait
        until released: a test interleaves two runs at a named call."""
        action = body.get("action")
        if not isinstance(action, str) or not action:
            raise ControlError(400, "action is required (e.g. CopyImage)")
        region = body.get("region")
        if region is not None and not isinstance(region, str):
            raise ControlError(400, "region must be a string")
        count = _number(body, "count", integer=True)
        hold = {"action": action, "region": region, "remaining": 1 if count is None else count,
                "waiting": 0, "caught": 0, "event": threading.Event()}
        self.state.holds.append(hold)
        return {"ok": True}

    def c_get_holds(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        return {"holds": [{k: v for k, v in h.items() if k != "event"} for h in self.state.holds]}

    def c_release_holds(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        """Lets the held calls of `action` (every action when none is named)
        go on, and drops those holds."""
        action = body.get("action")
        kept, released = [], 0
        for hold in self.state.holds:
            if action in (None, hold["action"]):
                hold["event"].set()
                released += hold["waiting"]
            else:
                kept.append(hold)
        self.state.holds[:] = kept
        return {"ok": True, "released": released}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Local EC2 emulator (moto + AWS AMI rules) for ami-publisher")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = pick a free port)")
    p.add_argument(
        "--copy-delay-seconds", type=float, default=DEFAULT_COPY_DELAY_SECONDS,
        help=f"seconds a CopyImage copy stays pending before it becomes available (default {DEFAULT_COPY_DELAY_SECONDS:g})",
    )
    p.add_argument("--verbose", action="store_true", help="log every HTTP request to stderr")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error("--port must be between 0 and 65535")
    if args.copy_delay_seconds < 0:
        p.error("--copy-delay-seconds must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="emulator: %(levelname)s %(message)s")
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        import rules  # the package beside this file (sys.path[0] is this directory)
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server
    except Exception as e:
        print(f"emulator: cannot load moto ({type(e).__name__}: {e}); "
              "install tests/requirements.txt into .venv", file=sys.stderr)
        return 2

    rules.STATE.cli_copy_delay_seconds = float(args.copy_delay_seconds)
    rules.STATE.reset_all()
    rules.install()
    rules.ledger.definition()  # template.yaml read once, before any request
    app = EmulatorApp(rules, DomainDispatcherApplication(create_backend_app))
    try:
        server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=MotoRequestHandler)
    except (OSError, SystemExit) as e:
        # werkzeug reports "port in use" by printing and raising SystemExit.
        reason = e if isinstance(e, OSError) else "address already in use"
        print(f"emulator: cannot listen on 127.0.0.1:{args.port}: {reason}", file=sys.stderr)
        return 3
    print(f"EMULATOR_READY http://127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
