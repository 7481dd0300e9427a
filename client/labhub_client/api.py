"""The LabHub API as the client uses it: projects, resumable uploads (tus, through tuspy),
ingestions, live job events (SSE), datasets and downloads.

Every failure is a LabHubError with the server's problem code; `retriable` says whether trying
again later can help (the network, a restarting server, 5xx, 429), so callers back off and retry
those and report the rest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError

from labhub_client.config import write_private

VERSION = "0.1.0"
# one PATCH: LabHub stores and acknowledges each 8 MiB part as it arrives, so a dropped connection
# loses at most a part whatever the size of the PATCH, and fewer round trips go faster
CHUNK = 64 * 1024 * 1024
FINAL = {"succeeded", "failed", "cancelled"}
RETRIABLE = {408, 425, 429, 500, 502, 503, 504}
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
EventHandler = Callable[[str, dict[str, Any]], None]  # (event name, data)


class LabHubError(Exception):
    def __init__(self, status: int | None, code: str, detail: str, *, retriable: bool = False) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.retriable = status, code, detail, retriable

    def __str__(self) -> str:
        return f"{self.detail} ({self.code}{f', HTTP {self.status}' if self.status else ''})"


def unreachable(exc: BaseException) -> LabHubError:
    return LabHubError(
        None, "unreachable", f"the server cannot be reached: {exc or type(exc).__name__}", retriable=True
    )


def _problem(response: httpx.Response) -> LabHubError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") or response.reason_phrase or f"HTTP {response.status_code}"
    code = body.get("code") or re.sub(r"[^a-z0-9]+", "_", (body.get("title") or "error").lower())
    for item in body.get("errors") or []:
        detail += f"; {item.get('path')}: {item.get('message')}"
    # upload_used: another request holds the upload right now; it is used up or free again soon
    retriable = response.status_code in RETRIABLE or code == "upload_used"
    return LabHubError(response.status_code, code, detail, retriable=retriable)


def device_login(
    url: str,
    *,
    machine: str,
    scopes: list[str],
    on_code: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Sign in without a password (RFC 8628 device flow, LabHub's /api/auth/device): on_code gets the
    user code and the URL to show; the answer is the new personal access token once the person
    approves in the browser. LabHubError when they deny, the code expires or the server refuses."""
    with httpx.Client(
        base_url=url.rstrip("/"), timeout=httpx.Timeout(timeout_s, connect=10.0),
        headers={"User-Agent": f"labhub-client/{VERSION}"},
    ) as http:  # fmt: skip

        def post(path: str, body: dict[str, Any]) -> httpx.Response:
            try:
                return http.post(path, json=body)
            except httpx.TransportError as exc:
                raise unreachable(exc) from None

        started = post("/api/auth/device", {"client_name": "labhub-client", "machine": machine, "scopes": scopes})
        if started.status_code != 200:
            raise _problem(started)
        code = started.json()
        on_code(code)
        interval = float(code.get("interval") or 5)
        deadline = time.monotonic() + float(code.get("expires_in") or 600) + interval
        while True:
            sleep(interval)
            answer = post("/api/auth/device/token", {"device_code": code["device_code"]})
            if answer.status_code == 200:
                token: dict[str, Any] = answer.json()
                return token
            problem = _problem(answer)
            if problem.code == "authorization_pending" and time.monotonic() < deadline:
                continue
            if problem.code == "slow_down":
                interval += 5  # RFC 8628 §3.5
                continue
            if problem.retriable and time.monotonic() < deadline:
                continue
            raise problem


class Backoff:
    """Waits that double from `first` to `most` seconds, with jitter; reset after a success."""

    def __init__(self, first: float = 1.0, most: float = 60.0) -> None:
        self.first, self.most, self._next = first, most, first

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> float:
        delay = self._next * random.uniform(0.75, 1.25)  # noqa: S311 - jitter, not a secret
        self._next = min(self._next * 2, self.most)
        sleep(delay)
        return delay

    def reset(self) -> None:
        self._next = self.first


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str
    id: str | None


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """text/event-stream lines into events (comments are pings and are skipped)."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent(fields.get("event", "message"), "\n".join(data), fields.get("id"))
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        else:
            fields[name] = value


class LabHub:
    def __init__(self, url: str, token: str, *, timeout_s: float = 60.0, chunk_size: int = CHUNK) -> None:
        self.url = url.rstrip("/")
        self.chunk_size = chunk_size
        self._auth = {"Authorization": f"Bearer {token}"}
        self._http = httpx.Client(
            base_url=self.url,
            headers={**self._auth, "User-Agent": f"labhub-client/{VERSION}"},
            timeout=httpx.Timeout(timeout_s, connect=10.0),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabHub:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **options)
        except httpx.TransportError as exc:
            raise unreachable(exc) from None
        if response.status_code >= 400:
            raise _problem(response)
        return response

    def _json(self, method: str, path: str, **options: Any) -> Any:
        return self._request(method, path, **options).json()

    def _all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self._json("GET", path, params={**params, **({"cursor": cursor} if cursor else {})})
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    # -- who and where ---------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/api/auth/me")
        return result

    def project(self, ref: str) -> dict[str, Any]:
        """A project by its id or its exact name."""
        if _OBJECT_ID.match(ref):
            try:
                found: dict[str, Any] = self._json("GET", f"/api/projects/{ref}")
                return found
            except LabHubError as exc:
                if exc.status not in (404, 422):
                    raise
        named = [p for p in self._all("/api/projects", q=ref, status="all", limit=100) if p["name"] == ref]
        if not named:
            raise LabHubError(
                404, "project_not_found", f"no project you can see is named or has the id {ref!r}"
            )
        if len(named) > 1:
            ids = ", ".join(p["id"] for p in named)
            raise LabHubError(
                409, "project_ambiguous", f"several projects are named {ref!r}; give the id ({ids})"
            )
        return named[0]

    # -- resumable uploads ---------------------------------------------------------------------------

    def create_upload(self, path: Path, *, name: str | None = None) -> str:
        """Start a tus upload of path's size; returns its id (to resume with later)."""
        name = name or path.name
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        metadata = {"filename": name, "content_type": content_type}
        encoded = ",".join(f"{k} {_b64(v)}" for k, v in metadata.items())
        response = self._request("POST", "/api/uploads", headers={
            "Tus-Resumable": "1.0.0", "Upload-Length": str(path.stat().st_size), "Upload-Metadata": encoded,
        })  # fmt: skip
        return response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]

    def upload_state(self, upload_id: str) -> dict[str, Any] | None:
        """The upload as the server has it, or None when it is gone (used, expired, removed)."""
        try:
            state: dict[str, Any] = self._json("GET", f"/api/uploads/{upload_id}")
            return state
        except LabHubError as exc:
            if exc.status in (404, 410):
                return None
            raise

    def upload(self, path: Path, upload_id: str, *, progress: Progress | None = None) -> dict[str, Any]:
        """Send path's bytes to an upload from the offset the server has (tuspy); returns the finished
        upload with the sha256 the server computed (send() compares it with the file's)."""
        url = f"{self.url}/api/uploads/{upload_id}"
        total = path.stat().st_size
        try:
            with path.open("rb") as stream:
                uploader = tus.TusClient(f"{self.url}/api/uploads", headers=self._auth).uploader(
                    file_stream=stream, url=url, chunk_size=self.chunk_size
                )
                uploader.stop_at = total
                if progress:
                    progress(uploader.offset, total)
                while uploader.offset < total:
                    uploader.upload_chunk()  # type: ignore[no-untyped-call]
                    if progress:
                        progress(uploader.offset, total)
        except TusCommunicationError as exc:
            raise _tus_error(exc) from None
        except (OSError, httpx.TransportError) as exc:  # requests' errors are OSErrors
            raise unreachable(exc) from None
        state = self.upload_state(upload_id)
        if state is None or state["status"] not in ("complete", "in_use"):
            raise LabHubError(409, "upload_incomplete", "the server does not have the whole file; try again",
                              retriable=True)  # fmt: skip
        return state

    # -- ingestion -----------------------------------------------------------------------------------

    def ingest(self, project_id: str, upload_ids: list[str], **options: Any) -> dict[str, Any]:
        """Ingest finished uploads; asking again for the same uploads answers the same batch."""
        body = {"upload_ids": upload_ids, **{k: v for k, v in options.items() if v is not None}}
        batch: dict[str, Any] = self._json("POST", f"/api/projects/{project_id}/ingestions", json=body)
        return batch

    def send(
        self, project_id: str, path: Path, *, resume: str | None = None, on_created: Callable[[str], None] | None = None,
        progress: Progress | None = None, sha256: str | None = None, **options: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """Upload a file and ingest it, exactly once even when called again after a failure: `resume`
        is the upload id a previous call reported through on_created. An upload the server no longer
        has may have been ingested already (the answer was lost): the ingestion is asked for again,
        which answers the batch it made, and only if there is none is the file sent anew."""
        if resume is not None and self.upload_state(resume) is None:
            try:
                return self.ingest(project_id, [resume], **options)
            except LabHubError as exc:
                if exc.status != 404:
                    raise
            resume = None
        sha256 = sha256 or sha256_of(path)  # the whole file, end to end: what the server hashed is checked
        upload_id = resume or self.create_upload(path)
        if resume is None and on_created:
            on_created(upload_id)
        state = self.upload(path, upload_id, progress=progress)
        if state["sha256"] != sha256:
            self._request("DELETE", f"/api/uploads/{upload_id}", headers={"Tus-Resumable": "1.0.0"})
            raise LabHubError(None, "file_changed", f"{path.name} changed while it was being sent (or was damaged on "
                              "the way); sending it again", retriable=True)  # fmt: skip
        return self.ingest(project_id, [upload_id], **options)

    # -- jobs ----------------------------------------------------------------------------------------

    def job(self, job_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._json("GET", f"/api/jobs/{job_id}")
        return found

    def jobs(self, *, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": limit, **({"status": status} if status else {})}
        page: dict[str, Any] = self._json("GET", "/api/jobs", params=params)
        return list(page["items"])

    def follow(self, job_id: str, on_event: EventHandler | None = None) -> dict[str, Any]:
        """Follow a job's event stream until it ends (reconnecting with Last-Event-ID through
        dropped connections and server restarts); returns the finished job."""
        last_id: str | None = None
        backoff = Backoff(0.5, 15.0)
        while True:
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
            try:
                with self._http.stream("GET", f"/api/jobs/{job_id}/events", headers=headers,
                                       timeout=httpx.Timeout(60.0, connect=10.0)) as response:  # fmt: skip
                    if response.status_code >= 400:
                        response.read()
                        raise _problem(response)
                    ended = response.status_code == 204
                    for event in parse_sse(response.iter_lines()):
                        last_id = event.id or last_id
                        data = json.loads(event.data)
                        if on_event:
                            on_event(event.event, data)
                        ended = ended or (
                            event.event in ("snapshot", "status") and data.get("status") in FINAL
                        )
                        backoff.reset()
                if ended:
                    return self.job(job_id)
            except httpx.TransportError:
                pass
            except LabHubError as exc:
                if not exc.retriable:
                    raise
            backoff.wait()

    # -- datasets ------------------------------------------------------------------------------------

    def datasets(self, project_id: str) -> list[dict[str, Any]]:
        return self._all(f"/api/projects/{project_id}/datasets", limit=100)

    def dataset(self, dataset_id: str) -> Dataset:
        """A dataset (its schema, statistics, provenance, … as a dict) that reads its data too."""
        return Dataset(self, self._json("GET", f"/api/datasets/{dataset_id}"))

    def columns(self, dataset_id: str, columns: list[str] | None = None) -> Any:
        """A dataset's columns (all, or only these) as a pyarrow.Table, read as an Arrow IPC stream:
        only those columns leave the server."""
        ipc = _pyarrow_ipc()
        params = {"format": "arrow", **({"columns": ",".join(columns)} if columns else {})}
        body = self._request("GET", f"/api/datasets/{dataset_id}/download", params=params).content
        return ipc.open_stream(body).read_all()

    def series(
        self, dataset_id: str, y: list[str] | None = None, *, x: str | None = None, start: str | float | None = None,
        stop: str | float | None = None, points: int = 1000,
    ) -> Any:  # fmt: skip
        """A chart's series as a pyarrow.Table (series, x, y; one row per point): per y at most
        2 × points values, each group's exact min and max at their x, or every row of a short range
        (x: a column that never decreases, "_row", or the dataset's own x; start/stop: the x range, ISO
        8601 for times). A dataset stored before summaries existed gets its summary first (a job)."""
        ipc = _pyarrow_ipc()
        params: dict[str, Any] = {"format": "arrow", "points": points}
        for key, value in (("y", ",".join(y) if y else None), ("x", x), ("from", start), ("to", stop)):
            if value is not None:
                params[key] = value
        while True:
            response = self._request("GET", f"/api/datasets/{dataset_id}/series", params=params)
            if response.status_code != 202:
                return ipc.open_stream(response.content).read_all()
            ended = self.follow(response.json()["id"])  # the summary's job: then ask again
            if ended["status"] != "succeeded":
                error = ended.get("error") or {}
                raise LabHubError(None, error.get("code", "summary_failed"), error.get("message", "no summary"))

    # -- SQL -----------------------------------------------------------------------------------------

    def sql_bytes(
        self, text: str, *, fmt: str = "arrow", project_id: str | None = None, limit: int | None = None
    ) -> tuple[bytes, httpx.Headers]:
        """One read-only statement's answer as LabHub encodes it (json, csv, parquet or arrow)."""
        body: dict[str, Any] = {"sql": text, "format": fmt}
        if project_id:
            body["project_id"] = project_id
        if limit is not None:
            body["limit"] = limit
        response = self._request("POST", "/api/sql", json=body)
        return response.content, response.headers

    def sql(self, text: str, *, project_id: str | None = None, limit: int | None = None) -> Any:
        """The answer to one read-only SQL statement as a pyarrow.Table (`.to_pandas()` for a data frame).
        Tables are `project.dataset`, `ds_<id>`, or (with project_id) the project's datasets by name."""
        ipc = _pyarrow_ipc()
        body, _headers = self.sql_bytes(text, fmt="arrow", project_id=project_id, limit=limit)
        return ipc.open_stream(body).read_all()

    def download(self, dataset_id: str, fmt: str, dest: Path, *, progress: Progress | None = None) -> Path:
        """Stream a dataset to dest (written to a temporary name, renamed when whole)."""
        partial = dest.with_name(f".{dest.name}.part")
        try:
            with self._http.stream(
                "GET", f"/api/datasets/{dataset_id}/download", params={"format": fmt}
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _problem(response)
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(1024 * 1024):
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total or done)
            partial.replace(dest)
        except httpx.TransportError as exc:
            raise unreachable(exc) from None
        finally:
            partial.unlink(missing_ok=True)
        return dest


class Dataset(dict[str, Any]):
    """A dataset as the API shows it, plus its data: `to_arrow()` and `to_pandas()` read only the
    columns asked for."""

    def __init__(self, hub: LabHub, fields: dict[str, Any]) -> None:
        super().__init__(fields)
        self._hub = hub

    @property
    def id(self) -> str:
        return str(self["id"])

    def to_arrow(self, columns: list[str] | None = None) -> Any:
        return self._hub.columns(self.id, columns)

    def to_pandas(self, columns: list[str] | None = None) -> Any:
        return self.to_arrow(columns).to_pandas()

    def series(self, y: list[str] | None = None, **options: Any) -> Any:
        """What the console's chart draws, as a pyarrow.Table (LabHub.series)."""
        return self._hub.series(self.id, y, **options)


def _pyarrow_ipc() -> Any:
    try:
        import pyarrow.ipc
    except ImportError:  # pragma: no cover - depends on the installation
        raise LabHubError(
            None, "missing_pyarrow", "reading tables needs pyarrow: pip install 'labhub-client[data]'"
        ) from None
    return pyarrow.ipc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _tus_error(exc: TusCommunicationError) -> LabHubError:
    status = getattr(exc, "status_code", None)
    content = getattr(exc, "response_content", None) or b""
    try:
        body = json.loads(content)
    except (ValueError, TypeError):
        body = {}
    detail = body.get("detail") or str(exc) or "the upload failed"
    if status is None:
        return unreachable(exc)
    return LabHubError(status, body.get("code") or "upload_failed", detail,
                       retriable=status in RETRIABLE or status in (409, 460))  # fmt: skip


def save_json(path: Path, data: Any) -> None:
    write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
