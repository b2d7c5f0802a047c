# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations


class ModuleDocFragment:
    """The options every module of the collection takes to reach the Prefect API
    (module_utils/prefect_api.py prefect_argument_spec)."""

    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - URL of the Prefect API, with scheme, for example C(http://prefect.example.com:4200/api)
        or a Prefect Cloud workspace URL.
      - Defaults to the environment variable E(PREFECT_API_URL).
    type: str
  api_key:
    description:
      - "API key, sent as C(Authorization: Bearer). Not needed for a server without auth."
      - Defaults to the environment variable E(PREFECT_API_KEY). Never logged.
    type: str
  validate_certs:
    description:
      - Whether to validate the TLS certificate of an C(https) API URL.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each answer of the API.
    type: float
    default: 30
  retries:
    description:
      - How many times a connection error or an HTTP 429, 502, 503 or 504 answer is
        retried, waiting 0.5 s, 1 s, 2 s, ... in between (longer when the server
        sends C(Retry-After)).
    type: int
    default: 4
"""
