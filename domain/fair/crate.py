"""RO-Crate metadata, DataCite JSON and BagIt tag files for dataset versions (docs/architecture.md,
"Publishing and archiving"). Pure functions over what the areas keep; the zip is written elsewhere.

A crate is RO-Crate 1.3 (its context is the one the `rocrate` package bundles): a root Dataset with
name, description, datePublished, licence, authors and publisher; per dataset version its Parquet, a
CSV and the raw file, `variableMeasured` from the schema, units and statistics, and the lineage as
CreateActions (the ingestion or saved query, its instrument file or input datasets, the software
with versions, the person). Every entity is flat (@id references), as RO-Crate wants.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import attrs

from domain import __version__
from domain.datasets.models import NUMBER_TYPES, PARQUET, StoredDataset, finite_number

CONTEXT = "https://w3id.org/ro/crate/1.3/context"
PROFILE = "https://w3id.org/ro/crate/1.3"
MAX_VARIABLES = 2000  # columns described one by one; a wider dataset says how many more it has


@attrs.frozen
class PackedFile:
    path: str  # in the package
    name: str
    media_type: str
    size: int
    sha256: str
    local: str = ""  # where it is on this machine (written into the zip)
    text: bytes | None = None  # or its bytes


@attrs.frozen
class PackedDataset:
    stored: StoredDataset
    prefix: str  # "" (the crate is this dataset) or "datasets/<name>/"
    files: list[PackedFile]
    authors: list[tuple[str, str]]  # (user id, name)


def _ref(at: str) -> dict[str, str]:
    return {"@id": at}


def one(values: list[Any]) -> Any:
    """A single value as itself, several as a list (RO-Crate's compact JSON-LD)."""
    return values[0] if len(values) == 1 else values


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _described(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def variables(stored: StoredDataset, anchor: str) -> list[dict[str, Any]]:
    """schema.org PropertyValues, one per column: name, unit, type, minimum, maximum and what the
    statistics say (count, nulls, mean, standard deviation)."""
    out = []
    for i, column in enumerate(stored.dataset.schema[:MAX_VARIABLES]):
        stats = stored.dataset.stats.get(column.name) or {}
        said = [f"{column.type} column"]
        for key, label in (("count", "values"), ("nulls", "empty"), ("mean", "mean"), ("std", "standard deviation")):
            if stats.get(key) is not None:
                said.append(f"{label} {_described(stats[key])}")
        entity: dict[str, Any] = {
            "@id": f"#{anchor}-variable-{i}", "@type": "PropertyValue", "name": column.name,
            "propertyID": column.name, "description": "; ".join(said),
        }  # fmt: skip
        if column.unit:
            entity["unitText"] = column.unit
        for key, prop in (("min", "minValue"), ("max", "maxValue")):
            number = finite_number(stats.get(key)) if column.type in NUMBER_TYPES else None
            if number is not None:
                entity[prop] = number
            elif stats.get(key) is not None:
                entity["description"] += f"; {key} {_described(stats[key])}"
        out.append(entity)
    return out


def _software(versions: dict[str, str], base_url: str) -> list[dict[str, Any]]:
    made = [{"@id": "#software-labhub", "@type": "SoftwareApplication", "name": "LabHub", "version": __version__,
             "url": base_url + "/"}]  # fmt: skip
    for library, version in sorted(versions.items()):
        made.append({"@id": f"#software-{library}-{version}", "@type": "SoftwareApplication", "name": library,
                     "version": str(version), "url": f"https://pypi.org/project/{library}/{version}/"})  # fmt: skip
    return made


def _dataset_entities(
    packed: PackedDataset, *, license_url: str, in_crate: dict[str, str], base_url: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The dataset's own properties (for the root, or its directory) and its other entities."""
    stored, d = packed.stored, packed.stored.dataset
    anchor = f"v-{stored.id}"
    entities: list[dict[str, Any]] = []
    for f in packed.files:
        entities.append({
            "@id": f.path, "@type": "File", "name": f.name, "encodingFormat": f.media_type,
            "contentSize": str(f.size), "sha256": f.sha256, "description": _file_description(f, d.name),
        })  # fmt: skip
    variable_entities = variables(stored, anchor)
    entities += variable_entities
    entities.append({"@id": f"#identifier-{stored.id}", "@type": "PropertyValue", "name": "LabHub dataset version",
                     "propertyID": "LabHub dataset version", "value": f"{d.id} version {d.version}",
                     "description": f"read it at {base_url}/api/datasets/{d.id}?version={d.version}"})  # fmt: skip
    keywords = [k for k in (d.dataset_type, d.tag) if k]
    own: dict[str, Any] = {
        "name": d.name if d.latest_version == 1 else f"{d.name} (version {d.version})",
        "version": str(d.version),
        "dateCreated": _iso(d.created_at),
        "hasPart": [_ref(f.path) for f in packed.files],
        "variableMeasured": [_ref(v["@id"]) for v in variable_entities],
        "author": one([_ref(f"#person-{uid}") for uid, _name in packed.authors] or [_ref("#publisher")]),
        "license": _ref(license_url),
        "identifier": _ref(f"#identifier-{stored.id}"),
        **({"keywords": ", ".join(keywords)} if keywords else {}),
    }  # fmt: skip
    described = f"{d.row_count:,} rows × {len(d.schema):,} columns, made from {d.source.name}"
    if len(d.schema) > MAX_VARIABLES:
        described += f" (the first {MAX_VARIABLES:,} columns are described here)"
    own["description"] = described
    entities += _lineage(packed, in_crate, base_url)
    own["mentions"] = _ref(f"#action-{stored.id}")
    return own, entities


def _file_description(f: PackedFile, name: str) -> str:
    if f.media_type == PARQUET:
        return f"{name} as Apache Parquet: the stored table, with its column types"
    if f.media_type == "text/csv" and "/raw/" not in f"/{f.path}":
        return f"{name} as CSV (comma-separated, a header row, values as stored)"
    return f"the file {name} was made from, as it was uploaded"


def _lineage(packed: PackedDataset, in_crate: dict[str, str], base_url: str) -> list[dict[str, Any]]:
    """The activity that made the version: its CreateAction, software and inputs."""
    stored, d = packed.stored, packed.stored.dataset
    p = d.provenance
    raw = [f for f in packed.files if f.path.startswith(f"{packed.prefix}raw/")]
    results = [_ref(f.path) for f in packed.files if f not in raw]
    versions = {str(k): str(v) for k, v in (p.get("versions") or {}).items()}
    software = _software(versions, base_url)
    action: dict[str, Any] = {
        "@id": f"#action-{stored.id}", "@type": "CreateAction", "result": one(results),
        "instrument": one([_ref(s["@id"]) for s in software]),
        "agent": _ref(f"#person-{packed.authors[0][0]}") if packed.authors else _ref("#publisher"),
    }  # fmt: skip
    ended = p.get("ingested_at")
    if isinstance(ended, datetime):
        action["endTime"] = _iso(ended)
    entities: list[dict[str, Any]] = [action, *software]
    if p.get("derived_from") == "sql":
        action["name"] = f"Saved query that made {d.name}"
        action["description"] = str(p.get("query") or "")
        objects = []
        for given in p.get("inputs") or []:
            version_id = given.get("version_id") or given.get("dataset_id")
            if version_id in in_crate:
                objects.append(_ref(in_crate[version_id]))
            else:
                entities.append({"@id": f"#input-{version_id}", "@type": "Dataset",
                                 "name": f"{given.get('table')} (version {given.get('version', 1)})",
                                 "description": "a dataset this one was made from, not in this package"})  # fmt: skip
                objects.append(_ref(f"#input-{version_id}"))
        action["object"] = one(objects)
    else:
        action["name"] = f"Ingestion of {d.source.name}" + (f" ({p.get('format')})" if p.get("format") else "")
        action["object"] = one([_ref(f.path) for f in raw])
    return entities


def crate_metadata(
    datasets: list[PackedDataset], *, title: str, description: str, license_url: str, publisher: str,
    published: datetime, base_url: str, extra_parts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """ro-crate-metadata.json for one dataset version (files at the root) or several (each in its
    directory), with documents and records as extra_parts (File entities)."""
    single = len(datasets) == 1 and not datasets[0].prefix
    in_crate = {p.stored.id: (p.prefix or "./") for p in datasets}
    root: dict[str, Any] = {
        "@id": "./", "@type": "Dataset", "name": title, "description": description,
        "datePublished": _iso(published), "license": _ref(license_url), "publisher": _ref("#publisher"),
    }  # fmt: skip
    graph: list[dict[str, Any]] = [
        {"@id": "ro-crate-metadata.json", "@type": "CreativeWork", "conformsTo": _ref(PROFILE), "about": _ref("./")},
        root,
    ]
    people: dict[str, str] = {}
    parts: list[dict[str, str]] = []
    for packed in datasets:
        people.update(dict(packed.authors))
        own, entities = _dataset_entities(packed, license_url=license_url, in_crate=in_crate, base_url=base_url)
        if single:
            root.update({k: v for k, v in own.items() if k not in {"name", "description"}})
            root["description"] = f"{description}\n\n{own['description']}" if description else own["description"]
        else:
            graph.append({"@id": packed.prefix, "@type": "Dataset", **own})
            parts.append(_ref(packed.prefix))
        graph += entities
    if not single:
        root["hasPart"] = parts + [_ref(e["@id"]) for e in extra_parts or []]
        root["author"] = one([_ref(f"#person-{uid}") for uid in people] or [_ref("#publisher")])
        graph += extra_parts or []
    graph += [{"@id": f"#person-{uid}", "@type": "Person", "name": name or "a LabHub user",
               "affiliation": _ref("#publisher")} for uid, name in people.items()]  # fmt: skip
    graph.append({"@id": "#publisher", "@type": "Organization", "name": publisher, "url": base_url + "/"})
    graph.append({"@id": license_url, "@type": "CreativeWork", "name": license_name(license_url),
                  "description": license_description(license_url)})  # fmt: skip
    unique: dict[str, dict[str, Any]] = {}
    for entity in graph:  # software shared by two versions is one entity
        unique.setdefault(entity["@id"], entity)
    return {"@context": CONTEXT, "@graph": list(unique.values())}


def license_description(url: str) -> str:
    if url.startswith("https://spdx.org/licenses/"):
        return f"The {license_name(url)} licence (SPDX), under which the data may be used"
    if url.startswith("https://w3id.org/labhub/"):
        return "No licence was chosen when this package was made: ask the publisher before reusing the data"
    return "The licence under which the data may be used"


def license_name(url: str) -> str:
    return url.removeprefix("https://spdx.org/licenses/") if url.startswith("https://spdx.org/licenses/") else url


UNSPECIFIED_LICENSE = "#license-none-given"


def datacite(
    stored: StoredDataset, *, title: str, description: str, license_url: str | None, publisher: str,
    authors: list[tuple[str, str]], url: str, published: datetime | None,
) -> dict[str, Any]:  # fmt: skip
    """DataCite JSON (schema 4.5) for one dataset version, ready for minting a DOI: what DataCite
    requires (creators, titles, publisher, publicationYear, types) and what LabHub knows besides."""
    d = stored.dataset
    year = (published or d.created_at).year
    body: dict[str, Any] = {
        "schemaVersion": "http://datacite.org/schema/kernel-4",
        "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Tabular data"},
        "creators": [_creator(name) for _uid, name in authors] or [{"name": publisher, "nameType": "Organizational"}],
        "titles": [{"title": title}],
        "publisher": {"name": publisher},
        "publicationYear": str(year),
        "version": str(d.version),
        "url": url,
        "descriptions": [{"description": description or title, "descriptionType": "Abstract"},
                         {"description": f"{d.row_count:,} rows × {len(d.schema):,} columns: "
                                         + ", ".join(c.name + (f" [{c.unit}]" if c.unit else "") for c in d.schema[:200]),
                          "descriptionType": "TechnicalInfo"}],
        "dates": [{"date": d.created_at.date().isoformat(), "dateType": "Created"}]
                 + ([{"date": published.date().isoformat(), "dateType": "Issued"}] if published else []),
        "formats": list(dict.fromkeys([PARQUET, "text/csv", d.source.content_type])),
        "sizes": [f"{d.row_count} rows", f"{d.parquet_bytes} bytes"],
        "subjects": [{"subject": s} for s in dict.fromkeys((d.dataset_type, d.tag)) if s],
        "alternateIdentifiers": [{"alternateIdentifier": f"sha256:{stored.parquet_sha256}",
                                  "alternateIdentifierType": "sha256"}] if stored.parquet_sha256 else [],
    }  # fmt: skip
    if license_url:
        body["rightsList"] = [{"rights": license_name(license_url), "rightsUri": license_url}]
    return {k: v for k, v in body.items() if v != []}


def _creator(name: str) -> dict[str, Any]:
    parts = name.strip().rsplit(" ", 1)
    creator: dict[str, Any] = {"name": name or "a LabHub user", "nameType": "Personal"}
    if len(parts) == 2:
        creator.update({"givenName": parts[0], "familyName": parts[1], "name": f"{parts[1]}, {parts[0]}"})
    return creator


def bag_tags(files: list[tuple[str, str, int]], *, publisher: str, title: str, bagged: datetime) -> dict[str, bytes]:
    """BagIt 1.0 tag files for a payload of (path under data/, sha256, size)."""
    manifest = "".join(f"{sha} data/{path}\n" for path, sha, _size in files).encode()
    octets = sum(size for _path, _sha, size in files)
    info = (
        f"Source-Organization: {_one_line(publisher)}\nBagging-Date: {bagged.date().isoformat()}\n"
        f"Bag-Software-Agent: LabHub {__version__}\nExternal-Description: {_one_line(title)}\n"
        f"Payload-Oxum: {octets}.{len(files)}\n"
    ).encode()
    tags = {
        "bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        "bag-info.txt": info,
        "manifest-sha256.txt": manifest,
    }
    tags["tagmanifest-sha256.txt"] = "".join(
        f"{hashlib.sha256(body).hexdigest()} {name}\n" for name, body in tags.items()
    ).encode()
    return tags


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]
