# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The judgement of playbooks/verify.yml's checks (playbooks/tasks/verify.yml).

- ``results | prefect_fleet.fleet.verify_rows(...)``: one host's rows, each
  ``{check, ok, detail}``, from the registered results of the read-only tasks.
- ``hosts | prefect_fleet.fleet.verify_table(rows_by_host)``: the fleet's report, aligned
  lines and the number of failed checks; a host without rows failed or was unreachable.
"""

from __future__ import annotations

import re

# What Jinja's truncate filter keeps: a string up to this much over the length stays whole.
TRUNCATE_LEEWAY = 5


def truncate(text, length):
    """As Jinja's truncate(length): cut at a word boundary, ending in '...'."""
    text = str(text)
    if len(text) <= length + TRUNCATE_LEEWAY:
        return text
    return text[: length - 3].rsplit(" ", 1)[0] + "..."


def _results(registered):
    return (registered or {}).get("results") or []


def _int(value, default=0):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def worker_rows(host, instances, api, api_url):
    answers = {r.get("item"): r for r in _results(api)}
    rows = []
    for instance in instances:
        check = "worker %s online" % instance["name"]
        worker = "%s-%s" % (host, instance["name"])
        pool = instance.get("pool")
        answer = answers.get(pool, {})
        status = answer.get("status", -1)
        if not api_url:
            rows.append({"check": check, "ok": False, "detail": "no API URL: set prefect_worker_api_url or PREFECT_API_URL"})
        elif status != 200:
            why = "no such work pool" if status == 404 else "API answered HTTP %s %s" % (
                answer.get("status", "-"), truncate(answer.get("msg", ""), 100))
            rows.append({"check": check, "ok": False, "detail": "pool %s: %s" % (pool, why)})
        else:
            found = [w for w in answer.get("json") or [] if w.get("name") == worker]
            if not found:
                rows.append({"check": check, "ok": False, "detail": "%s is not registered in pool %s" % (worker, pool)})
            else:
                rows.append({"check": check, "ok": found[0].get("status") == "ONLINE",
                             "detail": "%s %s in pool %s, last heartbeat %s" % (
                                 worker, found[0].get("status"), pool, found[0].get("last_heartbeat_time") or "never")})
    return rows


def health_rows(health):
    rows = []
    for r in _results(health):
        status = r.get("status", -1)
        answer = "HTTP %s" % status if status > 0 else truncate(r.get("msg", "no answer"), 100)
        rows.append({"check": "%s %s health" % (r["item"]["kind"], r["item"]["name"]), "ok": status == 200,
                     "detail": "%s -> %s" % (r.get("url", ""), answer)})
    return rows


def launcher_rows(units, sockets):
    sockets = _results(sockets)
    rows = []
    for index, r in enumerate(_results(units)):
        env = r["item"]["env"]
        active = (r.get("stdout") or "").strip()
        issock = bool(((sockets[index] if index < len(sockets) else {}).get("stat") or {}).get("issock"))
        rows.append({"check": "launcher %s ready" % env, "ok": active == "active" and issock,
                     "detail": "prefect-launcher@%s %s, socket %s" % (
                         env, active or "unknown", "present" if issock else "missing: runs start without the launcher")})
    return rows


def mirror_rows(mirrors, clock, max_age):
    now = (clock.get("stdout") or "").strip()
    max_age = _int(max_age)
    rows = []
    for r in _results(mirrors):
        name = r["item"]["name"]
        check = "mirror %s fresh" % name
        if not (r.get("stat") or {}).get("exists"):
            rows.append({"check": check, "ok": False,
                         "detail": "never fetched: %s.git or its prefect-checkout-fetched stamp is missing" % name})
        elif not re.match(r"^[0-9]+$", now):
            rows.append({"check": check, "ok": False,
                         "detail": "cannot read the host clock: %s" % clock.get("msg", clock.get("stderr", ""))})
        else:
            age = int(now) - _int(r["stat"].get("mtime"))
            limit = " (max %ss)" % max_age if max_age > 0 else " (no age limit)"
            rows.append({"check": check, "ok": max_age == 0 or age <= max_age, "detail": "fetched %ss ago%s" % (age, limit)})
    return rows


def import_rows(imports):
    rows = []
    for r in _results(imports):
        ok = r.get("rc", 1) == 0
        if ok:
            detail = "prefect " + (r.get("stdout") or "").strip()
        else:
            lines = str(r["stderr"] if "stderr" in r else r.get("msg", "")).strip().splitlines()
            detail = truncate(lines[-1] if lines else "failed", 120)
        rows.append({"check": "env %s prefect" % r["item"]["name"], "ok": ok, "detail": detail})
    return rows


def disk_row(df, root, min_free_percent, min_free_mb):
    fields = " ".join((df.get("stdout_lines") or [])[1:]).split()
    if df.get("rc", 1) != 0 or len(fields) < 6:
        why = str(df["stderr"] if "stderr" in df else df.get("msg", "failed")).strip()
        return {"check": "disk free", "ok": False, "detail": "df %s: %s" % (root, why)}
    free_mb = _int(fields[3]) // 1024
    free_pct = round(100.0 * _int(fields[3]) / max(_int(fields[1]), 1), 1)
    return {"check": "disk free", "ok": free_pct >= float(min_free_percent) and free_mb >= _int(min_free_mb),
            "detail": "%s MiB (%s%%) free on %s (min %s MiB, %s%%)" % (free_mb, free_pct, fields[5], min_free_mb,
                                                                      min_free_percent)}


def verify_rows(results, host, instances=(), api_url="", mirror_max_age=0, root="/srv/prefect",
                min_free_percent=15, min_free_mb=1024):
    """results: the registered results by name (clock, api, health, launcher_units,
    launcher_sockets, mirrors, imports, df)."""
    r = {key: value or {} for key, value in (results or {}).items()}
    return (worker_rows(host, instances, r.get("api"), api_url)
            + health_rows(r.get("health"))
            + launcher_rows(r.get("launcher_units"), r.get("launcher_sockets"))
            + mirror_rows(r.get("mirrors"), r.get("clock", {}), mirror_max_age)
            + import_rows(r.get("imports"))
            + [disk_row(r.get("df", {}), root, min_free_percent, min_free_mb)])


UNREACHABLE = [{"check": "reachable", "ok": False, "detail": "the host failed or was unreachable before its checks ran"}]
HEAD = ["host", "check", "ok/FAIL", "detail"]


def verify_table(hosts, rows_by_host):
    """{lines, failed}: the report's lines (a header, a rule, one line per check) and the
    number of failed checks. rows_by_host lists each host's rows in the order of hosts."""
    rows = []
    for host, host_rows in zip(hosts, rows_by_host):
        for row in host_rows or UNREACHABLE:
            rows.append([host, row["check"], "ok" if row["ok"] else "FAIL", row["detail"]])
    hw = max([len(HEAD[0])] + [len(row[0]) for row in rows])
    cw = max([len(HEAD[1])] + [len(row[1]) for row in rows])
    lines = [("%-*s | %-*s | %-7s | %s" % (hw, row[0], cw, row[1], row[2], row[3])).strip() for row in [HEAD] + rows]
    lines.insert(1, "-" * hw + "-+-" + "-" * cw + "-+---------+-" + "-" * 6)
    return {"lines": lines, "failed": sum(1 for row in rows if row[2] == "FAIL")}


class FilterModule:
    def filters(self):
        return {"verify_rows": verify_rows, "verify_table": verify_table}
