"""The outside validators the FAIR packages are checked with, run as their authors ship them.

roc-validator (`rocrate-validator`) fetches the RO-Crate JSON-LD context over HTTP, through a
requests-cache SQLite cache; these machines reach no such server. So its cache is fed, before it
runs, the context that the `rocrate` package bundles (the same document w3id.org serves), under the
context's own URL, and it runs --offline: it reads that answer from its cache and nothing else.
"""

from __future__ import annotations

import importlib.resources
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import requests
import urllib3
from pyld import jsonld
from requests_cache import CachedSession

ROCRATE_CONTEXT = importlib.resources.files("rocrate") / "data" / "ro-crate.jsonld"


def bundled_context() -> tuple[str, bytes]:
    """(the context's URL, the document) as the rocrate package bundles it."""
    data = ROCRATE_CONTEXT.read_bytes()
    return json.loads(data)["@id"], data


def seed_validator_cache(cache_name: Path) -> str:
    """Put the bundled RO-Crate context into a requests-cache SQLite cache (roc-validator's
    --cache-path); the context's URL."""
    url, data = bundled_context()
    session = CachedSession(cache_name=str(cache_name), backend="sqlite", expire_after=-1)
    response = requests.Response()
    response.status_code = 200
    response.url = url
    response._content = data
    response.encoding = "utf-8"
    response.headers["Content-Type"] = "application/ld+json"
    response.request = requests.Request("GET", url).prepare()
    response.raw = urllib3.HTTPResponse(
        body=io.BytesIO(data), headers={"Content-Type": "application/ld+json"}, status=200,
        preload_content=False, request_url=url,
    )  # fmt: skip
    session.cache.save_response(response)
    session.close()
    return url


def validate_crate(path: Path, cache_name: Path, severity: str = "recommended") -> dict[str, Any]:
    """roc-validator's JSON report on a crate directory, offline."""
    validator = Path(sys.executable).with_name("rocrate-validator")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "report.json"
        done = subprocess.run(
            [str(validator), "-y", "--disable-color", "validate", "--offline", "--cache-path", str(cache_name),
             "-l", severity, "-f", "json", "-o", str(out), str(path)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert out.exists(), f"roc-validator wrote no report (exit {done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}"
        report: dict[str, Any] = json.loads(out.read_text())
    report["exit_code"] = done.returncode
    return report


def validate_crate_text(path: Path, cache_name: Path, severity: str = "required") -> tuple[int, str]:
    """roc-validator's exit code and text report (its JSON report cannot be written for a zip)."""
    validator = Path(sys.executable).with_name("rocrate-validator")
    done = subprocess.run(
        [str(validator), "-y", "--disable-color", "validate", "--offline", "--cache-path", str(cache_name),
         "-l", severity, "--no-paging", str(path)],
        capture_output=True, text=True, timeout=600, check=False, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def failures(report: dict[str, Any]) -> list[str]:
    return [f"{i.get('check', {}).get('identifier', '?')}: {i.get('message')}" for i in report.get("issues", [])]


def unzip(body: bytes, into: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        archive.extractall(into)
    return into


def schema_org_loader() -> Any:
    """pyld's document loader for these machines: the schema.org and RO-Crate contexts from what the
    rocrate package bundles (the RO-Crate context maps every schema.org term), nothing from the network."""
    url, data = bundled_context()
    document = json.loads(data)
    served = {"@context": document["@context"]}
    known = {url, "https://schema.org", "https://schema.org/", "http://schema.org", "http://schema.org/"}

    def load(requested: str, _options: Any = None) -> dict[str, Any]:
        if requested.rstrip("/") + "/" not in {k.rstrip("/") + "/" for k in known}:
            raise jsonld.JsonLdError(f"no network here: {requested}", "loading document failed", code="loading document failed")
        return {"contextUrl": None, "documentUrl": requested, "document": served}

    return load
