# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Shared code of the prefect_fleet work pool modules.

A small client for the Prefect 3 REST API built on Ansible's own HTTP helper
(``open_url``); the modules never import prefect. It adds what every module
needs: the common options, retries with backoff on transient failures, one
clear error message per failure, and the field-by-field diff that check mode
and ``--diff`` show.
"""

from __future__ import annotations

import copy
import http.client
import json
import re
import socket
import ssl
import time
import urllib.error
from urllib.parse import quote, urlsplit

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import SSLValidationError, open_url

# Answers worth another try: rate limiting and a proxy or load balancer that
# could not reach the API for a moment. Connection errors are retried too.
TRANSIENT_STATUSES = frozenset((429, 502, 503, 504))
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0

# The server's own check of a base job template (prefect.server.schemas.actions.
# validate_base_job_template uses this pattern from prefect.utilities.templating).
PLACEHOLDER_RE = re.compile(r"({{\s*([\w\.\-\[\]$]+)\s*}})")

# Worker types from the server's collection registry view (3.8.8:
# GET /collections/views/aggregate-worker-metadata).
WORKER_METADATA_PATH = "/collections/views/aggregate-worker-metadata"


def prefect_argument_spec():
    """The options every module of the role takes."""
    return dict(
        api_url=dict(type="str", fallback=(env_fallback, ["PREFECT_API_URL"])),
        api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["PREFECT_API_KEY"])),
        validate_certs=dict(type="bool", default=True),
        timeout=dict(type="float", default=30.0),
        retries=dict(type="int", default=4),
    )


class PrefectAPIError(Exception):
    """A request failed; ``str()`` is the one message the module fails with."""

    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


def quote_name(name):
    """A name as one URL path segment (pool and queue names may hold spaces)."""
    return quote(str(name), safe="")


def error_detail(body):
    """The readable part of an error answer of the Prefect API (FastAPI)."""
    if not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return " ".join(text.split())[:300]
    if isinstance(data, dict):
        items = data.get("exception_detail") or data.get("detail")
        if isinstance(items, list):
            parts = []
            for item in items:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append("%s: %s" % (loc, item.get("msg")) if loc else str(item.get("msg")))
                else:
                    parts.append(str(item))
            return "; ".join(parts)
        if items:
            return str(items)
        if data.get("exception_message"):
            return str(data["exception_message"])
    return json.dumps(data)[:300]


class PrefectAPI:
    """Requests against one Prefect API, with retries and clear errors."""

    def __init__(self, module):
        self.module = module
        params = module.params
        url = (params.get("api_url") or "").strip()
        if not url:
            module.fail_json(msg="No Prefect API URL: set api_url or PREFECT_API_URL "
                                 "(for example http://prefect.example.com:4200/api).")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            module.fail_json(msg="The Prefect API URL %r has no http:// or https:// scheme and host; "
                                 "write it in full, for example http://%s/api."
                                 % (url, url.split("/")[0] or "prefect.example.com:4200"))
        self.url = url.rstrip("/")
        self.api_key = params.get("api_key")
        self.validate_certs = params.get("validate_certs", True)
        self.timeout = params.get("timeout") or 30.0
        self.retries = max(0, params.get("retries") if params.get("retries") is not None else 4)
        self.requests = []  # (method, path, status) of every attempt, for the result

    # -- transport -----------------------------------------------------------

    def _headers(self):
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = "Bearer %s" % self.api_key
        return headers

    def _once(self, method, path, data):
        """One attempt: (status, body bytes, headers) with status -1 for no answer."""
        try:
            resp = open_url(
                self.url + path, data=data, headers=self._headers(), method=method,
                timeout=self.timeout, validate_certs=self.validate_certs,
                follow_redirects="safe", http_agent="prefect-fleet-ansible",
            )
            return resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read()
            except Exception:  # pylint: disable=broad-except
                body = b""
            return exc.code, body, exc.headers
        except SSLValidationError as exc:
            raise PrefectAPIError(
                "The TLS certificate of the Prefect API at %s did not validate: %s "
                "(set validate_certs=false only for a test server)." % (self.url, exc))
        except (urllib.error.URLError, UrlsConnectionError, socket.timeout, OSError,
                http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise PrefectAPIError(
                    "The TLS certificate of the Prefect API at %s did not validate: %s "
                    "(set validate_certs=false only for a test server)." % (self.url, reason.verify_message or reason))
            return -1, str(reason).encode(), {}

    def request(self, method, path, body=None, missing_ok=False):
        """Send a request and return the decoded JSON answer (None for no content).

        With missing_ok, an object-level 404 ("Work pool 'x' not found.") returns
        None; a 404 for an unknown route still fails, because it means a wrong URL.
        """
        data = None if body is None else json.dumps(body).encode()
        delay = FIRST_BACKOFF_SECONDS
        attempt = 0
        while True:
            attempt += 1
            status, raw, headers = self._once(method, path, data)
            self.requests.append((method, path, status))
            if 200 <= status < 300:
                if not raw or not raw.strip():
                    return None
                try:
                    return json.loads(raw)
                except ValueError:
                    raise PrefectAPIError(
                        "%s %s%s answered HTTP %s with something that is not JSON; is %s a "
                        "Prefect API URL (it usually ends in /api)?" % (method, self.url, path, status, self.url))
            transient = status == -1 or status in TRANSIENT_STATUSES
            if transient and attempt <= self.retries:
                wait = delay
                retry_after = (headers or {}).get("Retry-After") if status != -1 else None
                if retry_after and str(retry_after).strip().isdigit():
                    wait = max(wait, float(retry_after))
                time.sleep(min(wait, MAX_BACKOFF_SECONDS * 4))
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
                continue
            detail = error_detail(raw) if status != -1 else raw.decode("utf-8", "replace")
            if status == 404 and missing_ok and detail != "Not Found":
                return None
            raise self._error(method, path, status, detail, attempt)

    def _error(self, method, path, status, detail, attempts):
        tried = " (tried %d times)" % attempts if attempts > 1 else ""
        if status == -1:
            return PrefectAPIError("Cannot reach the Prefect API at %s: %s%s." % (self.url, detail, tried), status)
        if status == 401:
            if self.api_key:
                return PrefectAPIError(
                    "The Prefect API at %s rejected the API key (HTTP 401 Unauthorized): check api_key / "
                    "PREFECT_API_KEY (prefect_work_pool_api_key in the role)." % self.url, status)
            return PrefectAPIError(
                "The Prefect API at %s needs an API key (HTTP 401 Unauthorized) and none was given: set "
                "api_key or PREFECT_API_KEY (prefect_work_pool_api_key in the role)." % self.url, status)
        if status == 403:
            return PrefectAPIError(
                "The Prefect API at %s refused %s %s (HTTP 403 Forbidden%s): the API key was rejected or "
                "may not do this." % (self.url, method, path, ": " + detail if detail else ""), status)
        if status == 404 and detail == "Not Found":
            return PrefectAPIError(
                "%s %s%s answered 404 Not Found: is %s the Prefect API URL (it usually ends in /api)?"
                % (method, self.url, path, self.url), status)
        if status in (400, 409, 422):
            return PrefectAPIError("The Prefect API refused %s %s (HTTP %s): %s" % (method, path, status, detail), status)
        return PrefectAPIError(
            "%s %s%s failed with HTTP %s%s%s" % (method, self.url, path, status, ": " + detail if detail else "", tried),
            status)

    # -- worker types and their default templates -----------------------------

    def worker_types(self):
        """{type: metadata} of every worker type the server knows (its collection view)."""
        view = self.request("GET", WORKER_METADATA_PATH)
        types = {}
        for collection, workers in sorted((view or {}).items()):
            if not isinstance(workers, dict):
                continue
            for slug, meta in sorted(workers.items()):
                if isinstance(meta, dict):
                    worker_type = meta.get("type") or slug
                    types[worker_type] = dict(meta, collection=collection)
        return types


# -- templates ---------------------------------------------------------------

def template_shape_error(template):
    """Why a base job template would be refused by the server, or None."""
    if not isinstance(template, dict):
        return "base_job_template must be a dict (the pool type's template: job_configuration and variables)"
    missing = [k for k in ("job_configuration", "variables") if not template.get(k)]
    if missing:
        return ("base_job_template must contain both a job_configuration key and a variables key; "
                "missing or empty: %s" % ", ".join(missing))
    if not isinstance(template["job_configuration"], dict) or not isinstance(template["variables"], dict):
        return "base_job_template.job_configuration and base_job_template.variables must be dicts"
    declared = set((template["variables"].get("properties") or {}).keys())
    used = set()
    for value in template["job_configuration"].values():
        used.update(name for _, name in PLACEHOLDER_RE.findall(json.dumps(value)))
    undeclared = sorted(used - declared)
    if undeclared:
        return ("base_job_template.job_configuration uses variables that base_job_template.variables.properties "
                "does not declare: %s" % ", ".join(undeclared))
    return None


def deep_merge(base, override):
    """override merged into a copy of base; dicts merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = copy.deepcopy(base)
        for key, value in override.items():
            merged[key] = deep_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def apply_job_variables(template, job_variables):
    """The template with job_variables set as the defaults of its variables.

    Variables stay in the schema, so a deployment or a flow run can still
    override each of them. A dict default (env) is merged with the one already
    in the template. Returns (template, unknown variable names).
    """
    result = copy.deepcopy(template)
    properties = result.setdefault("variables", {}).setdefault("properties", {})
    unknown = []
    for name, value in (job_variables or {}).items():
        if name not in properties:
            unknown.append(name)
            continue
        prop = properties[name]
        if isinstance(value, dict) and isinstance(prop.get("default"), dict):
            prop["default"] = deep_merge(prop["default"], value)
        else:
            prop["default"] = copy.deepcopy(value)
    return result, sorted(unknown)


# -- diffs --------------------------------------------------------------------

def flat_changes(before, after, prefix=""):
    """(before, after) holding only the fields that differ, nested dicts as dotted keys."""
    old, new = {}, {}
    for key in sorted(set(before) | set(after), key=str):
        name = "%s%s" % (prefix, key)
        if key in before and key in after and isinstance(before[key], dict) and isinstance(after[key], dict):
            sub_old, sub_new = flat_changes(before[key], after[key], name + ".")
            old.update(sub_old)
            new.update(sub_new)
        elif key not in after:
            old[name] = before[key]
        elif key not in before:
            new[name] = after[key]
        elif before[key] != after[key]:
            old[name] = before[key]
            new[name] = after[key]
    return old, new


def make_diff(kind, name, before, after):
    """The diff Ansible shows with --diff: only what changes, named by its field."""
    if before is None:
        old, new = {"state": "absent"}, dict(after or {}, state="present")
    elif after is None:
        old, new = dict(before, state="present"), {"state": "absent"}
    else:
        old, new = flat_changes(before, after)
    return dict(
        before=old, after=new,
        before_header="%s %s (Prefect API)" % (kind, name),
        after_header="%s %s (wanted)" % (kind, name),
    )


def fail(module, api, exc):
    """Fail the module with the error's one message and the requests made."""
    module.fail_json(msg=str(exc), status=getattr(exc, "status", None),
                     requests=["%s %s -> %s" % r for r in api.requests] if api else [])
